"""Checkpoints: a run saved (atomically) after every epoch, read back (`weights_only=True`), put back into a run to
resume it, and the checks that a file can be resumed from."""

import io
import math
from dataclasses import fields
from pathlib import Path

import torch

from .errors import ParameterError, UserError
from .files import DiskFullError, atomic_write

LAST_CHECKPOINT = "last.pt"  # written after every epoch by `fit(run, out)`; `resume` continues from it
FREE_ON_RESUME = ("device", "data_dir", "output_dir", "resume")  # where a run happens; every other parameter must match


class CheckpointError(UserError, ValueError):
    """A checkpoint file cannot be used: unreadable, or made for another model."""


def save_checkpoint(path, run) -> Path:
    """Atomically save `run` (`engine.Run`) at `path`: its parameters, history, the evaluated weights (the EMA's,
    with an EMA) and everything `build` needs to resume it: the trained weights, the EMA's state, the optimizer,
    the schedule and the random-number states."""
    history, path = run.history, Path(path)
    if not all(math.isfinite(history[-1][k]) for k in ("train_loss", "eval_loss", "eval_acc")):
        raise CheckpointError("refusing to save a checkpoint of a diverged model (its loss or accuracy is not finite)")
    state = dict(
        model_name=run.params.model,
        params=run.params.as_dict(),
        epoch=len(history),
        history=history,
        model=run.evaluated.state_dict(),
        optimizer=run.optimizer.state_dict(),
        trained=None if run.ema_model is None else run.model.state_dict(),
        ema_model=None if run.ema_model is None else run.ema_model.state_dict(),
        scheduler=run.scheduler.state_dict(),
        rng=dict(
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            loader=run.train_loader.generator.get_state(),
        ),
    )
    buffer = io.BytesIO()  # serialized first: a full disk then fails a plain write (ENOSPC), not inside torch.save
    torch.save(state, buffer)
    try:
        return atomic_write(path, lambda p: p.write_bytes(buffer.getvalue()))
    except DiskFullError:
        if path.exists():  # the previous epoch's file is untouched
            raise DiskFullError(
                f"cannot write {path}: no space left on the device; free some space, "
                f"then continue with -p resume {path}"
            ) from None
        raise


def read_checkpoint(path, device="cpu") -> dict:
    """A checkpoint's contents, loaded with `weights_only=True` (tensors and plain data only, no code)."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; give the path of a .pt file written by a run")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # truncated, corrupt, or holding objects that weights_only refuses
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({_last_line(err)}); "
            "it is damaged or not from this project: use another one or train again"
        ) from None
    if not isinstance(ckpt, dict) or not {"model_name", "model", "history"} <= set(ckpt):
        raise CheckpointError(f"checkpoint {path} is not from this project (no model_name/model/history)")
    return ckpt


def _last_line(err: Exception) -> str:
    """The last non-empty line of an error message (torch puts the specific cause there), or the error's type."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:200]


def restore(ckpt, run) -> None:
    """Put `run`'s weights (and their EMA), optimizer, schedule, random-number states and history back to where
    `ckpt` stopped (`resumable` has checked that it was written with the same parameters, `ema` among them)."""
    if run.ema_model is None:
        run.model.load_state_dict(ckpt["model"])
    else:
        run.model.load_state_dict(ckpt["trained"])
        run.ema_model.load_state_dict(ckpt["ema_model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    run.train_loader.generator.set_state(ckpt["rng"]["loader"])
    if ckpt["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    run.history[:] = ckpt["history"]


def resumable(p, device) -> dict:
    """The checkpoint at `p.resume` (a `config.TrainParams`), read to `device`, if it continues the run of `p`: a
    `last.pt` of an unfinished run with the same parameters (only where the run happens may differ; a parameter
    added since it was written counts at its default). Else ParameterError, naming what is wrong."""
    try:
        ckpt = read_checkpoint(p.resume, device)
    except CheckpointError as err:
        raise _invalid(p, f"a last.pt written by an interrupted run ({err})") from None
    saved = {f.name: ckpt["params"].get(f.name, f.default) for f in fields(p) if f.name not in FREE_ON_RESUME}
    differ = [f"{k}={v!r} there, {getattr(p, k)!r} here" for k, v in saved.items() if v != getattr(p, k)]
    if differ:
        raise _invalid(p, "a checkpoint of a run with the same parameters; it differs in " + ", ".join(differ))
    if ckpt["epoch"] >= p.epochs:
        raise _invalid(p, f"a checkpoint of an unfinished run (it already has all {ckpt['epoch']} epochs)")
    return ckpt


def _invalid(p, expected: str) -> ParameterError:
    return ParameterError(f"parameter resume={p.resume!r} is invalid: expected {expected}")
