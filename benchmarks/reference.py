"""The course's reference recipe, kept exactly as students write it: the baseline of the speed benchmark.

A 10,170-parameter CNN, `DataLoader` over `torchvision.datasets.MNIST` with per-image PIL
`RandomRotation((-7, 7))` + `ToTensor` + `Normalize`, SGD lr 0.01 momentum 0.9, batch 128, 20 epochs,
and the plain training loop (no scheduler, no AMP).
"""

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision import transforms
from tqdm import tqdm

EPOCHS, BATCH_SIZE, LR, MOMENTUM, ROTATION = 20, 128, 0.01, 0.9, 7.0


def reference_net(dropout=0.05) -> nn.Sequential:
    """conv 1->8, 8->12, pool, 12->16, pool, 1x1 16->16, three 16->16, GAP, linear; 3x3 convs: ReLU, BN, Dropout."""

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.ReLU(), nn.BatchNorm2d(cout), nn.Dropout(dropout)]

    return nn.Sequential(
        *block(1, 8),
        *block(8, 12),
        nn.MaxPool2d(2),  # 28 -> 14
        *block(12, 16),
        nn.MaxPool2d(2),  # 14 -> 7
        nn.Conv2d(16, 16, 1, bias=False),
        *block(16, 16),
        *block(16, 16),
        *block(16, 16),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def reference_transforms(train: bool) -> transforms.Compose:
    """Per-image PIL transforms: random rotation (training only), to tensor, normalise."""
    steps = [transforms.RandomRotation((-ROTATION, ROTATION))] if train else []
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])


def reference_loaders(root, batch_size=BATCH_SIZE, workers=0, pin_memory=False, n_train=None):
    """Train/test `DataLoader`s over torchvision's MNIST; `n_train` keeps the first N training images."""
    train = torchvision.datasets.MNIST(root, train=True, transform=reference_transforms(True))
    test = torchvision.datasets.MNIST(root, train=False, transform=reference_transforms(False))
    if n_train is not None:
        train = torch.utils.data.Subset(train, range(n_train))
    kwargs = dict(num_workers=workers, pin_memory=pin_memory, persistent_workers=workers > 0)
    return (
        torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, **kwargs),
        torch.utils.data.DataLoader(test, batch_size=1000, **kwargs),
    )


def reference_optimizer(model) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


def reference_train_epoch(model, loader, optimizer, device, desc="reference") -> None:
    """The textbook loop: move each batch, forward, loss, backward, step."""
    model.train()
    for x, y in tqdm(loader, desc=desc, mininterval=1.0, ncols=100):
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
