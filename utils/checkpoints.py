"""Checkpoints: save (atomically), read (`weights_only=True`), load into a model, and resume state: what `fit`
needs to continue an interrupted run, and the checks that a file can be resumed from."""

import io
import math
from pathlib import Path

import torch

from .errors import UserError
from .files import DiskFullError, atomic_write
from .models import eval_split, get_model

LAST_CHECKPOINT = "last.pt"  # written after every epoch by `fit(checkpoint_dir=...)`; `resume` continues from it
FREE_ON_RESUME = ("device", "data_dir", "output_dir", "resume")  # where a run happens; every other parameter must match


class CheckpointError(UserError, ValueError):
    """A checkpoint file cannot be used: unreadable, or made for another model."""


def save_checkpoint(
    out_dir, config, model, optimizer, history, name=None, scheduler=None, train_loader=None, ema_model=None
) -> Path:
    """Atomically save weights, optimizer, history and parameters as `name` (default `<model>_acc<accuracy>.pt`);
    with the scheduler and train loader also their states and the RNG states, which `fit(resume=...)` needs.
    `model` holds the evaluated weights: with `ema_model` (fit's EMA of the weights) those are the EMA's, and the
    trained weights and the EMA's state are saved besides, for resuming."""
    last, split = history[-1], eval_split(history)
    if not all(math.isfinite(last[k]) for k in ("train_loss", f"{split}_loss", f"{split}_acc")):
        raise CheckpointError("refusing to save a checkpoint of a diverged model (its loss or accuracy is not finite)")
    state = dict(
        model_name=config["model"],
        params=config,
        epoch=len(history),
        history=history,
        model=(model if ema_model is None else ema_model.module).state_dict(),
        optimizer=optimizer.state_dict(),
        trained=None if ema_model is None else model.state_dict(),
        ema_model=None if ema_model is None else ema_model.state_dict(),
        scheduler=None if scheduler is None else scheduler.state_dict(),
        rng=dict(
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            loader=None if train_loader is None else train_loader.generator.get_state(),
        ),
    )
    name = name or f"{config['model']}_acc{last[split + '_acc']:.4f}.pt"
    buffer = io.BytesIO()  # serialized first: a full disk then fails a plain write (ENOSPC), not inside torch.save
    torch.save(state, buffer)
    path = Path(out_dir) / name
    try:
        return atomic_write(path, lambda p: p.write_bytes(buffer.getvalue()))
    except DiskFullError:
        if name == LAST_CHECKPOINT and path.exists():  # the previous epoch's last.pt is untouched
            raise DiskFullError(
                f"cannot write {path}: no space left on the device; free some space, "
                f"then continue with -p resume {path}",
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


def load_checkpoint(path, device="cpu", model_name=None):
    """Rebuild the model named in a checkpoint and load its weights; returns (model, checkpoint dict).
    With `model_name`, a checkpoint of another model is refused with a clear message."""
    ckpt = read_checkpoint(path, device)
    name = ckpt["model_name"]
    if model_name is not None and name != model_name:
        raise CheckpointError(
            f"checkpoint {path} holds model {name!r}, not {model_name!r}; "
            f"use model={name!r} or a checkpoint of {model_name!r}"
        )
    try:
        model = get_model(name).to(device)
        model.load_state_dict(ckpt["model"])
    except (ValueError, RuntimeError) as err:  # unknown name, or missing keys / size mismatches
        raise CheckpointError(
            f"checkpoint {path} does not fit model {name!r} ({_last_line(err)}); it was saved from "
            "another version of the model: train again or use the matching code"
        ) from None
    return model, ckpt


def _last_line(err: Exception) -> str:
    """The last non-empty line of an error message (torch puts the specific cause there), or the error's type."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:200]


def restore(ckpt, model, optimizer, scheduler, train_loader, ema_model=None) -> list[dict]:
    """Put weights (and their EMA), optimizer, schedule and random-number states back to where `ckpt` stopped;
    returns its history."""
    if ckpt.get("scheduler") is None:
        raise CheckpointError(f"the checkpoint has no training state to resume from; use {LAST_CHECKPOINT}")
    if (ema_model is None) != (ckpt.get("ema_model") is None):
        raise CheckpointError("the checkpoint was written with ema set differently; resume with the same ema")
    if ema_model is None:
        model.load_state_dict(ckpt["model"])
    else:
        model.load_state_dict(ckpt["trained"])
        ema_model.load_state_dict(ckpt["ema_model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    train_loader.generator.set_state(ckpt["rng"]["loader"])
    if ckpt["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    return list(ckpt["history"])


def resume_problem(path, config) -> str | None:
    """What is wrong with resuming the run of `config` from `path`, or None: it must be a `last.pt` of an
    unfinished run made with the same parameters (only where the run happens may differ)."""
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as err:
        return f"a last.pt written by an interrupted run ({err})"
    if ckpt.get("scheduler") is None:
        return "a last.pt written after an epoch (this checkpoint has no training state)"
    differ = [
        f"{k}={ckpt['params'].get(k)!r} there, {v!r} here"
        for k, v in config.items()
        if k not in FREE_ON_RESUME and ckpt["params"].get(k) != v
    ]
    if differ:
        return "a checkpoint of a run with the same parameters; it differs in " + ", ".join(differ)
    if ckpt["epoch"] >= config["epochs"]:
        return f"a checkpoint of an unfinished run (it already has all {ckpt['epoch']} epochs)"
    return None
