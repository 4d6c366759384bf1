"""Checking the training notebook's parameters before any work, and where a run writes its files."""

import math
import time
from pathlib import Path

from .data import REPO_ROOT
from .engine import resolve_device
from .models import list_models

TRAIN_IMAGES = 60_000
OPTIMIZERS = ("sgd", "adam")


class ParameterError(ValueError):
    """A notebook parameter has a value that cannot work; the message names it and what is accepted."""


def _fail(name, value, accepted):
    raise ParameterError(f"parameter {name}={value!r} is invalid: expected {accepted}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def check_params(model, epochs, batch_size, lr, optimizer, seed, device, warmup=0.2, grad_clip=None, subset=None,
                 data_dir=None, output_dir=None):
    """Validate the training parameters; returns them as a dict, with `device` resolved."""
    if model not in list_models():
        _fail("model", model, f"one of {', '.join(list_models())}")
    if not _is_int(epochs) or epochs < 1:
        _fail("epochs", epochs, "an integer >= 1")
    if subset is not None and (not _is_int(subset) or not 1 <= subset <= TRAIN_IMAGES):
        _fail("subset", subset, f"None or an integer in 1..{TRAIN_IMAGES}")
    n_train = subset or TRAIN_IMAGES
    if not _is_int(batch_size) or not 1 <= batch_size <= n_train:
        _fail("batch_size", batch_size, f"an integer in 1..{n_train} (the number of training images)")
    if not _positive_number(lr):
        _fail("lr", lr, "a finite number > 0")
    if optimizer not in OPTIMIZERS:
        _fail("optimizer", optimizer, f"one of {', '.join(OPTIMIZERS)}")
    if not _positive_number(warmup) or warmup >= 1:
        _fail("warmup", warmup, "a fraction of the training steps, 0 < warmup < 1")
    if grad_clip is not None and not _positive_number(grad_clip):
        _fail("grad_clip", grad_clip, "None or a finite number > 0 (the largest gradient norm)")
    if not _is_int(seed):
        _fail("seed", seed, "an integer")
    try:
        device = str(resolve_device(device))
    except (ValueError, RuntimeError) as err:
        _fail("device", device, f"'auto', 'cpu', 'cuda' or 'mps' available on this machine ({err})")
    if output_dir is not None and Path(output_dir).exists() and not Path(output_dir).is_dir():
        _fail("output_dir", output_dir, "a directory path (this is an existing file)")
    return dict(
        model=model, epochs=epochs, batch_size=batch_size, lr=float(lr), optimizer=optimizer, warmup=float(warmup),
        grad_clip=grad_clip, seed=seed, device=device, subset=subset,
        data_dir=None if data_dir is None else str(data_dir),
        output_dir=None if output_dir is None else str(output_dir),
    )


def make_output_dir(output_dir=None) -> Path:
    """The run's output folder: `output_dir`, or `runs/<timestamp>/` at the repo root."""
    path = Path(output_dir) if output_dir is not None else REPO_ROOT / "runs" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path
