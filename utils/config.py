"""Checking the training notebook's parameters before any work, and where a run writes its files."""

import math
import os
import time
from pathlib import Path

from .data import RAW_MD5, REPO_ROOT, VALIDATION_IMAGES, bad_raw_files, raw_dir
from .engine import CheckpointError, read_checkpoint, resolve_device
from .models import list_models

TRAIN_IMAGES = 60_000
OPTIMIZERS = ("sgd", "adam")
FREE_ON_RESUME = ("device", "data_dir", "output_dir", "resume")  # where a run happens; every other parameter must match


class ParameterError(ValueError):
    """A notebook parameter has a value that cannot work; the message names it and what is accepted."""


def _fail(name, value, accepted):
    raise ParameterError(f"parameter {name}={value!r} is invalid: expected {accepted}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _positive_number(v):
    return _number(v) and v > 0


def check_params(model, epochs, batch_size, lr, optimizer, seed, device, warmup=0.2, grad_clip=None, subset=None,
                 data_dir=None, output_dir=None, rotation=10.0, translate=0.1, erase=0.0, resume=None, dataset="mnist",
                 label_smoothing=0.0, ema=None, validation=False):
    """Validate the training parameters; returns them as a dict, with `device` resolved. A run with `resume`
    and no `output_dir` writes into the checkpoint's folder."""
    if dataset not in RAW_MD5:
        _fail("dataset", dataset, f"one of {', '.join(RAW_MD5)}")
    if model not in list_models():
        _fail("model", model, f"one of {', '.join(list_models())}")
    if not _is_int(epochs) or epochs < 1:
        _fail("epochs", epochs, "an integer >= 1")
    if not isinstance(validation, bool):
        _fail("validation", validation, "True (train on the first 50,000 images, score on the last 10,000) or False")
    available = TRAIN_IMAGES - VALIDATION_IMAGES * validation
    if subset is not None and (not _is_int(subset) or not 1 <= subset <= available):
        _fail("subset", subset, f"None or an integer in 1..{available}")
    n_train = subset or available
    if not _is_int(batch_size) or not 1 <= batch_size <= n_train:
        _fail("batch_size", batch_size, f"an integer in 1..{n_train} (the number of training images)")
    batches = math.ceil(n_train / batch_size)
    if epochs * batches < 3:
        _fail("epochs", epochs, f"at least 3 training steps in all (here {epochs} x {batches} batches of "
              f"{batch_size}); raise epochs or subset, or lower batch_size")
    if not _positive_number(lr):
        _fail("lr", lr, "a finite number > 0")
    if optimizer not in OPTIMIZERS:
        _fail("optimizer", optimizer, f"one of {', '.join(OPTIMIZERS)}")
    if not _positive_number(warmup) or warmup >= 1:
        _fail("warmup", warmup, "a fraction of the training steps, 0 < warmup < 1")
    if grad_clip is not None and not _positive_number(grad_clip):
        _fail("grad_clip", grad_clip, "None or a finite number > 0 (the largest gradient norm)")
    if not (_number(label_smoothing) and 0 <= label_smoothing < 1):
        _fail("label_smoothing", label_smoothing, "a fraction, 0 <= label_smoothing < 1 (0 turns it off)")
    if ema is not None and not (_number(ema) and 0 < ema < 1):
        _fail("ema", ema, "None or a decay per step, 0 < ema < 1 (e.g. 0.999)")
    if not _is_int(seed):
        _fail("seed", seed, "an integer")
    if not (_number(rotation) and 0 <= rotation <= 180):
        _fail("rotation", rotation, "degrees, 0 <= rotation <= 180")
    if not (_number(translate) and 0 <= translate < 0.5):
        _fail("translate", translate, "a fraction of the image size, 0 <= translate < 0.5")
    if not (_number(erase) and 0 <= erase <= 1):
        _fail("erase", erase, "a probability, 0 <= erase <= 1")
    try:
        device = str(resolve_device(device))
    except (ValueError, RuntimeError) as err:
        _fail("device", device, f"'auto', 'cpu', 'cuda' or 'mps' available on this machine ({err})")
    if data_dir is not None and bad_raw_files(raw_dir(data_dir, dataset), dataset) and not _writable(data_dir):
        _fail("data_dir", data_dir, f"a folder this user can write to (the {dataset} files are not there yet)")
    if output_dir is not None and not _writable(output_dir):
        _fail("output_dir", output_dir, "a folder path this user can write to (not an existing file)")
    if resume is not None and output_dir is None:
        output_dir = Path(resume).parent
    config = dict(
        dataset=dataset, model=model, epochs=epochs, batch_size=batch_size, lr=float(lr), optimizer=optimizer,
        warmup=float(warmup), grad_clip=grad_clip, seed=seed, device=device, subset=subset, rotation=float(rotation),
        translate=float(translate), erase=float(erase), label_smoothing=float(label_smoothing),
        ema=None if ema is None else float(ema), validation=validation,
        data_dir=None if data_dir is None else str(data_dir),
        output_dir=None if output_dir is None else str(output_dir), resume=None if resume is None else str(resume),
    )
    if resume is not None:
        _check_resume(resume, config)
    return config


def _writable(folder) -> bool:
    """Whether `folder` is, or can be created as, a directory this process may write to."""
    path = Path(folder).absolute()
    while not path.exists():
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _check_resume(path, config) -> None:
    """`resume` must be a `last.pt` of an unfinished run made with the same parameters."""
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as err:
        _fail("resume", str(path), f"a last.pt written by an interrupted run ({err})")
    if ckpt.get("scheduler") is None:
        _fail("resume", str(path), "a last.pt written after an epoch (this checkpoint has no training state)")
    differ = [f"{k}={ckpt['params'].get(k)!r} there, {v!r} here" for k, v in config.items()
              if k not in FREE_ON_RESUME and ckpt["params"].get(k) != v]
    if differ:
        _fail("resume", str(path), "a checkpoint of a run with the same parameters; it differs in " + ", ".join(differ))
    if ckpt["epoch"] >= config["epochs"]:
        _fail("resume", str(path), f"a checkpoint of an unfinished run (it already has all {ckpt['epoch']} epochs)")


def make_output_dir(output_dir=None) -> Path:
    """The run's output folder: `output_dir`, or `runs/<timestamp>/` at the repo root."""
    path = Path(output_dir) if output_dir is not None else REPO_ROOT / "runs" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path
