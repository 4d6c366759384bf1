"""The training parameters (`TrainParams`: names, types, defaults, and a table of the values each accepts), the
check every notebook makes of what papermill passed it, and where a run writes its files."""

import ast
import contextlib
import difflib
import itertools
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .data import VALIDATION_IMAGES
from .datafiles import RAW_MD5, REPO_ROOT
from .errors import ParameterError
from .models import has_dropout, list_models

TRAIN_IMAGES = 60_000
OPTIMIZERS = ("sgd", "adam")


def _integer(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _one_of(*values):
    return lambda v: isinstance(v, str) and v in values, f"one of {', '.join(values)}"


def _path(v):
    return v is None or isinstance(v, (str, os.PathLike))


def _optional(accepts):
    return lambda v: v is None or accepts(v)


def _positive(v):
    return _number(v) and v > 0


def _fraction(v):
    return _number(v) and 0 <= v < 1


def _inside(v):
    return _number(v) and 0 < v < 1


def _bool(v):
    return isinstance(v, bool)


DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def param(default, accepts, accepted: str):
    """A parameter's default, the check of a value (`accepts(value)`) and what it accepts, in words."""
    return field(default=default, metadata={"accepts": accepts, "accepted": accepted})


def _fail(name, value, accepted):
    raise ParameterError(f"parameter {name}={value!r} is invalid: expected {accepted}")


@dataclass(frozen=True)
class TrainParams:
    """The parameters of 03_training.ipynb, declared once: names, types, defaults (the notebook's, `s7`'s recipe)
    and the values each accepts. Creating one checks every value, without touching a file or a device: a bad one
    raises ParameterError naming it and what is accepted, before any work (limits that depend on other parameters:
    `_limits`; where a value meets the machine it is checked where it is used: the device by
    `engine.resolve_device`, data_dir by `prepare_data`, output_dir by `make_output_dir`, resume by `engine.build`).
    metrics.json, checkpoints, resume and the sweep's names all come from here."""

    dataset: str = param("mnist", *_one_of(*RAW_MD5))
    model: str = param("s7", *_one_of(*list_models()))
    epochs: int = param(15, lambda v: _integer(v) and v >= 1, "an integer >= 1")
    batch_size: int = param(64, _integer, "an integer (images per step)")
    lr: float = param(0.1, _positive, "a finite number > 0")
    optimizer: str = param("sgd", *_one_of(*OPTIMIZERS))
    momentum: float | None = param(None, _optional(_inside), "None (OneCycle moves it) or a constant, 0 < momentum < 1")
    weight_decay: float = param(0.0, lambda v: _number(v) and v >= 0, "a finite number >= 0 (0 turns it off)")
    lr_warmup: float = param(0.2, _inside, "a fraction of the training steps, 0 < lr_warmup < 1")
    grad_clip: float | None = param(None, _optional(_positive), "None or a finite number > 0 (largest gradient norm)")
    seed: int = param(1, _integer, "an integer")
    device: str = param(
        "auto", lambda v: isinstance(v, str) and DEVICE.fullmatch(v), "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    )
    rotation: float = param(7.0, lambda v: _number(v) and 0 <= v <= 180, "degrees, 0 <= rotation <= 180")
    translate: float = param(
        0.05, lambda v: _number(v) and 0 <= v < 0.5, "a fraction of the image size, 0 <= translate < 0.5"
    )
    scale: float = param(0.02, _fraction, "a fraction, 0 <= scale < 1 (zoom 1 ± scale)")
    erase: float = param(0.0, lambda v: _number(v) and 0 <= v <= 1, "a probability, 0 <= erase <= 1")
    label_smoothing: float = param(0.0, _fraction, "a fraction, 0 <= label_smoothing < 1 (0 turns it off)")
    dropout: float | None = param(None, _optional(_fraction), "None (the model's own) or 0 <= dropout < 1")
    ema: float | None = param(0.999, _optional(_inside), "None or a decay per step, 0 < ema < 1 (e.g. 0.999)")
    ema_warmup: bool = param(True, _bool, "True (the EMA's decay starts low) or False")
    clean_epochs: int = param(3, lambda v: _integer(v) and v >= 0, "an integer >= 0 (the last epochs, unaugmented)")
    amp: bool = param(False, _bool, "True (on a CUDA GPU: float16 mixed precision) or False (float32)")
    validation: bool = param(False, _bool, "True (train on the first 50,000 images, score on the rest) or False")
    data_dir: str | None = param(None, _path, "None or a folder path")
    subset: int | None = param(None, _optional(_integer), "None or an integer (the first N training images)")
    output_dir: str | None = param(None, _path, "None or a folder path")  # with resume and none: its folder
    resume: str | None = param(None, _path, "None or the path of a last.pt")

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not f.metadata["accepts"](value):
                _fail(f.name, value, f.metadata["accepted"])
            if isinstance(value, int) and float in (f.type, *getattr(f.type, "__args__", ())):
                object.__setattr__(self, f.name, float(value))  # 1 and 1.0 are one run: recorded as floats
            if isinstance(value, os.PathLike):
                object.__setattr__(self, f.name, str(value))
        self._limits()
        if self.resume is not None and self.output_dir is None:
            object.__setattr__(self, "output_dir", str(Path(self.resume).parent))

    def _limits(self):
        """The limits that depend on other parameters: a dropout for a model with one, how many images there are to
        train on, and steps."""
        if self.dropout is not None and not has_dropout(self.model):
            _fail("dropout", self.dropout, f"None ({self.model} has no dropout layer)")
        available = TRAIN_IMAGES - VALIDATION_IMAGES * self.validation
        if self.subset is not None and not 1 <= self.subset <= available:
            _fail("subset", self.subset, f"None or an integer in 1..{available}")
        n_train = self.subset or available
        if not 1 <= self.batch_size <= n_train:
            _fail("batch_size", self.batch_size, f"an integer in 1..{n_train} (the number of training images)")
        batches = math.ceil(n_train / self.batch_size)
        if self.epochs * batches < 3:
            _fail(
                "epochs",
                self.epochs,
                f"at least 3 training steps in all (here {self.epochs} x {batches} batches of {self.batch_size}); "
                "raise epochs or subset, or lower batch_size",
            )

    def as_dict(self) -> dict:
        """Every parameter by name: what metrics.json, checkpoints and TensorBoard record."""
        return asdict(self)


PARAMETERS = [f.name for f in fields(TrainParams)]
INJECTED_CELL = "# Parameters\n"  # how papermill's injected-parameters cell starts: then one assignment per parameter
ALIASES = {  # names other frameworks use -> ours, for "did you mean"
    "learning_rate": "lr",
    "batch": "batch_size",
    "bs": "batch_size",
    "n_epochs": "epochs",
    "num_epochs": "epochs",
    "wd": "weight_decay",
    "smoothing": "label_smoothing",
    "random_seed": "seed",
    "out_dir": "output_dir",
    "warmup": "lr_warmup",
}


def passed_names(namespace) -> list[str]:
    """The names papermill passed to this kernel (-p, -f, -y or its Python API): the assignments of its
    injected-parameters cell, read from IPython's input history `In`. None without papermill."""
    for source in reversed(namespace.get("In", [])):
        if source.startswith(INJECTED_CELL):
            return [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets]
    return []


def check_names(namespace, notebook: str) -> None:
    """Refuse, before any work, a parameter papermill passed that the notebook's parameters cell does not declare
    (its annotated names, `__annotations__`): one line naming it and the closest declared one."""
    declared = list(namespace.get("__annotations__", {}))
    unknown = [n for n in passed_names(namespace) if n not in declared and not n.startswith("PAPERMILL_")]
    if not unknown:
        return
    aliases = {a: d for a, d in ALIASES.items() if d in declared}
    close = {n: difflib.get_close_matches(n.lower(), [*declared, *aliases], n=1, cutoff=0.6) for n in unknown}
    problems = [
        f"{n} is not a parameter of {notebook}" + (f" (did you mean {aliases.get(c[0], c[0])}?)" if c else "")
        for n, c in close.items()
    ]
    listing = "" if all(close.values()) else f"; its parameters: {', '.join(declared)}"
    raise ParameterError("parameter " + "; parameter ".join(problems) + listing)


def check_params(namespace, notebook: str = "03_training") -> TrainParams:
    """The training parameters among `namespace` (a notebook passes its globals(): the parameters cell's values,
    papermill's included), checked: a name papermill passed that is not a parameter (`check_names`) or a bad value
    raises ParameterError. Names not given take TrainParams' defaults; other names in `namespace` are ignored."""
    check_names(namespace, notebook)
    return TrainParams(**{name: namespace[name] for name in PARAMETERS if name in namespace})


def runs_dir() -> Path:
    """Where run folders go: $RUNS_DIR if set (the tests set a temporary folder), else runs/ at the repo root."""
    return Path(os.environ.get("RUNS_DIR") or REPO_ROOT / "runs")


def make_output_dir(output_dir=None, prefix: str = "", parent: Path | None = None) -> Path:
    """The run's output folder: `output_dir` (created if needed; it may hold an earlier run), or else a new folder
    of its own under `parent` (default: runs_dir()), `<prefix><timestamp>`, created exclusively: a run started in
    the same second gets `-2`, `-3`, ..., so runs started together never write into one folder."""
    if output_dir is not None:
        path = Path(output_dir)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            _fail("output_dir", str(output_dir), f"a folder path this user can write to ({err.strerror})")
        return path
    parent = parent or runs_dir()
    parent.mkdir(parents=True, exist_ok=True)
    stamp = f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}"
    for n in itertools.count(1):
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return path
