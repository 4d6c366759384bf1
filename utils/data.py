"""MNIST and Fashion-MNIST as tensors: an in-memory batch loader with batched tensor augmentation (the files
themselves: `datafiles`)."""

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .datafiles import CLASSES, prepare_data, raw_dir, read_idx

VALIDATION_IMAGES = 10_000  # held out of the 60,000 training images by `validation=True`: for choosing recipes
EVAL_BATCH = 500  # images per evaluation batch: on a 2-core CPU faster than 2,000 or 10,000 (activations stay in cache)


def class_names(dataset: str = "mnist") -> list[str]:
    """The dataset's class names in label order ("0".."9" for MNIST, "T-shirt/top".. for Fashion-MNIST)."""
    return list(CLASSES[dataset])  # a copy: the table stays as it is


def load_data(root=None, train: bool = True, dataset: str = "mnist", download: bool = True):
    """Return (images uint8 [N, 28, 28], labels int64 [N]) of one split, from its verified IDX files."""
    folder = raw_dir(prepare_data(root, dataset, download), dataset)
    prefix = "train" if train else "t10k"
    return read_idx(folder / f"{prefix}-images-idx3-ubyte"), read_idx(folder / f"{prefix}-labels-idx1-ubyte").long()


@dataclass
class Augment:
    """Random affine (rotation ±deg, translation ±fraction, zoom 1 ± scale) and optional random erasing."""

    rotation: float
    translate: float
    scale: float = 0.02
    erase: float = 0.0  # probability of erasing one rectangle per image

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a float batch (N, 1, H, W) in [0, 1]; every image gets its own random parameters."""
        n = x.shape[0]
        # On a CPU the geometry and the sampling run in float64: there torch's scalar, AVX2 and AVX-512 kernels give
        # the same images to the bit (in float32 they differ in the last bits), and emulated CPUs can run them
        # (qemu-user 7.2 gathers wrongly in the float32 AVX2 kernel: tests/README.md). MPS has no float64.
        precise = torch.float64 if x.device.type == "cpu" else x.dtype
        u = torch.rand(n, 4, generator=generator).to(x.device, precise)  # drawn on CPU: same numbers on any device
        angle = torch.deg2rad((2 * u[:, 0] - 1) * self.rotation)
        low, high = 1 - self.scale, 1 + self.scale  # a range, as it was before `scale` was a parameter: same bits
        scale = low + (high - low) * u[:, 1]
        shift = (2 * u[:, 2:] - 1) * self.translate * 2  # affine_grid spans [-1, 1]: image width = 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x.to(precise), grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(x.dtype)
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

    @contextlib.contextmanager
    def augmented(self, on: bool):
        """Within the block the batches are augmented only if `on`; the loader's augmentation is back after it."""
        augment = self.augment
        self.augment = augment if on else None
        try:
            yield self
        finally:
            self.augment = augment

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


def make_loaders(data_dir, batch_size, device, augment=None, seed=1, subset=None, dataset="mnist", validation=False,
                 eval_images=None):  # fmt: skip
    """Fast in-memory (train, evaluation) loaders. The evaluation loader is the test set, or with `validation` the
    last 10,000 training images, held out (then the model trains on the first 50,000 and never sees the test set),
    cut to its first `eval_images` if given. `subset` keeps the first N training images (smoke runs)."""
    train_x, train_y = load_data(data_dir, True, dataset)
    if validation:
        (train_x, eval_x), (train_y, eval_y) = (
            t.split([len(t) - VALIDATION_IMAGES, VALIDATION_IMAGES]) for t in (train_x, train_y)
        )
    else:
        eval_x, eval_y = load_data(data_dir, False, dataset)
    if subset is not None:
        train_x, train_y = train_x[:subset], train_y[:subset]
    train = TensorLoader(train_x, train_y, batch_size, device, shuffle=True, augment=augment, seed=seed)
    eval_x, eval_y = eval_x[:eval_images], eval_y[:eval_images]
    evaluation = TensorLoader(eval_x, eval_y, EVAL_BATCH, device, split="val" if validation else "test")
    return train, evaluation
