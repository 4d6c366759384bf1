"""The training parameters (`TrainParams`: names, types, defaults, checks), the check every notebook makes of
what papermill passed it, the project's one-line command-line errors, and where a run writes its files."""

import argparse
import ast
import difflib
import itertools
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .checkpoints import resume_problem
from .data import VALIDATION_IMAGES
from .datafiles import RAW_MD5, REPO_ROOT, bad_raw_files, raw_dir
from .engine import resolve_device
from .errors import ParameterError
from .models import list_models

TRAIN_IMAGES = 60_000
OPTIMIZERS = ("sgd", "adam")


class ArgumentParser(argparse.ArgumentParser):
    """argparse for this project's commands: a bad command line is one line naming the problem (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fail(name, value, accepted):
    raise ParameterError(f"parameter {name}={value!r} is invalid: expected {accepted}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _positive_number(v):
    return _number(v) and v > 0


@dataclass(frozen=True)
class TrainParams:
    """The parameters of 03_training.ipynb, written once: names, types, defaults (the notebook's, `s7`'s recipe)
    and checks. Creating one checks every value: a bad one raises ParameterError naming it and what is
    accepted, before any work. metrics.json, checkpoints, resume and the sweep's names all come from here."""

    dataset: str = "mnist"
    model: str = "s7"
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.1
    optimizer: str = "sgd"
    weight_decay: float = 0.0
    warmup: float = 0.2
    grad_clip: float | None = None
    seed: int = 1
    device: str = "auto"  # resolved: "auto" becomes the device picked
    rotation: float = 7.0
    translate: float = 0.05
    erase: float = 0.0
    label_smoothing: float = 0.0
    ema: float | None = 0.999
    ema_warmup: bool = True
    clean_epochs: int = 3
    validation: bool = False
    data_dir: str | None = None
    subset: int | None = None
    output_dir: str | None = None  # with resume and no output_dir: the checkpoint's folder
    resume: str | None = None

    def __post_init__(self):
        if not isinstance(self.dataset, str) or self.dataset not in RAW_MD5:
            _fail("dataset", self.dataset, f"one of {', '.join(RAW_MD5)}")
        if not isinstance(self.model, str) or self.model not in list_models():
            _fail("model", self.model, f"one of {', '.join(list_models())}")
        if not _is_int(self.epochs) or self.epochs < 1:
            _fail("epochs", self.epochs, "an integer >= 1")
        if not isinstance(self.validation, bool):
            _fail(
                "validation",
                self.validation,
                "True (train on the first 50,000 images, score on the last 10,000) or False",
            )
        available = TRAIN_IMAGES - VALIDATION_IMAGES * self.validation
        if self.subset is not None and (not _is_int(self.subset) or not 1 <= self.subset <= available):
            _fail("subset", self.subset, f"None or an integer in 1..{available}")
        n_train = self.subset or available
        if not _is_int(self.batch_size) or not 1 <= self.batch_size <= n_train:
            _fail("batch_size", self.batch_size, f"an integer in 1..{n_train} (the number of training images)")
        batches = math.ceil(n_train / self.batch_size)
        if self.epochs * batches < 3:
            _fail(
                "epochs",
                self.epochs,
                f"at least 3 training steps in all (here {self.epochs} x {batches} batches "
                f"of {self.batch_size}); raise epochs or subset, or lower batch_size",
            )
        if not _positive_number(self.lr):
            _fail("lr", self.lr, "a finite number > 0")
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            _fail("optimizer", self.optimizer, f"one of {', '.join(OPTIMIZERS)}")
        if not _positive_number(self.warmup) or self.warmup >= 1:
            _fail("warmup", self.warmup, "a fraction of the training steps, 0 < warmup < 1")
        if self.grad_clip is not None and not _positive_number(self.grad_clip):
            _fail("grad_clip", self.grad_clip, "None or a finite number > 0 (the largest gradient norm)")
        if not (_number(self.weight_decay) and self.weight_decay >= 0):
            _fail("weight_decay", self.weight_decay, "a finite number >= 0 (0 turns it off)")
        if not (_number(self.label_smoothing) and 0 <= self.label_smoothing < 1):
            _fail("label_smoothing", self.label_smoothing, "a fraction, 0 <= label_smoothing < 1 (0 turns it off)")
        if self.ema is not None and not (_number(self.ema) and 0 < self.ema < 1):
            _fail("ema", self.ema, "None or a decay per step, 0 < ema < 1 (e.g. 0.999)")
        if not isinstance(self.ema_warmup, bool):
            _fail("ema_warmup", self.ema_warmup, "True (the average's decay starts low) or False")
        if not _is_int(self.clean_epochs) or self.clean_epochs < 0:
            _fail("clean_epochs", self.clean_epochs, "an integer >= 0 (the last epochs, trained without augmentation)")
        if not _is_int(self.seed):
            _fail("seed", self.seed, "an integer")
        if not (_number(self.rotation) and 0 <= self.rotation <= 180):
            _fail("rotation", self.rotation, "degrees, 0 <= rotation <= 180")
        if not (_number(self.translate) and 0 <= self.translate < 0.5):
            _fail("translate", self.translate, "a fraction of the image size, 0 <= translate < 0.5")
        if not (_number(self.erase) and 0 <= self.erase <= 1):
            _fail("erase", self.erase, "a probability, 0 <= erase <= 1")
        try:
            device = str(resolve_device(self.device))
        except ValueError as err:
            _fail("device", self.device, f"'auto', 'cpu', 'cuda' or 'mps' available on this machine ({err})")
        if self.data_dir is not None and not isinstance(self.data_dir, (str, os.PathLike)):
            _fail("data_dir", self.data_dir, "None or a folder path")
        if (
            self.data_dir is not None
            and bad_raw_files(raw_dir(self.data_dir, self.dataset), self.dataset)
            and not _writable(self.data_dir)
        ):
            _fail(
                "data_dir",
                self.data_dir,
                f"a folder this user can write to (the {self.dataset} files are not there yet)",
            )
        for name in ("output_dir", "resume"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), (str, os.PathLike)):
                _fail(name, getattr(self, name), "None or a path")
        if self.output_dir is not None and not _writable(self.output_dir):
            _fail("output_dir", self.output_dir, "a folder path this user can write to (not an existing file)")
        output_dir = (
            Path(self.resume).parent if self.resume is not None and self.output_dir is None else self.output_dir
        )
        normal = dict(
            lr=float(self.lr),
            warmup=float(self.warmup),
            device=device,
            rotation=float(self.rotation),
            translate=float(self.translate),
            erase=float(self.erase),
            label_smoothing=float(self.label_smoothing),
            weight_decay=float(self.weight_decay),
            ema=None if self.ema is None else float(self.ema),
        )
        paths = {
            k: None if v is None else str(v)
            for k, v in dict(data_dir=self.data_dir, output_dir=output_dir, resume=self.resume).items()
        }
        for name, value in {**normal, **paths}.items():
            object.__setattr__(self, name, value)
        if self.resume is not None and (problem := resume_problem(self.resume, asdict(self))):
            _fail("resume", self.resume, problem)

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
    """The training parameters among `namespace` (03_training passes its globals(): the parameters cell's values,
    papermill's included), checked: a name papermill passed that is not a parameter (`check_names`) or a bad value
    raises ParameterError. Names not given take TrainParams' defaults; other names in `namespace` are ignored."""
    check_names(namespace, notebook)
    return TrainParams(**{name: namespace[name] for name in PARAMETERS if name in namespace})


def _writable(folder) -> bool:
    """Whether `folder` is, or can be created as, a directory this process may write to."""
    path = Path(folder).absolute()
    while not path.exists():
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def runs_dir() -> Path:
    """Where run folders go: $RUNS_DIR if set (the tests set a temporary folder), else runs/ at the repo root."""
    return Path(os.environ.get("RUNS_DIR") or REPO_ROOT / "runs")


def make_output_dir(output_dir=None, prefix: str = "") -> Path:
    """The run's output folder: `output_dir` (created if needed; it may hold an earlier run), or else a new folder
    of its own under runs_dir(), `<prefix><timestamp>`, created exclusively: a run started in the same second
    gets `-2`, `-3`, ..., so runs started together never write into one folder."""
    if output_dir is not None:
        path = Path(output_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    runs_dir().mkdir(parents=True, exist_ok=True)
    stamp = f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}"
    for n in itertools.count(1):
        path = runs_dir() / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
