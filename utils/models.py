"""Small MNIST CNNs and their registry: `get_model(name)`, `list_models()`, each with a recipe and a target."""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from .datafiles import MEAN_STD
from .history import BEST_EPOCH, FIRST_EPOCH, LAST3_MIN, Target

RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"  # <model>.yaml: papermill -f files


class Normalize(nn.Module):
    """(x - mean) / std with the constants as buffers (saved with the model, never trained); MNIST's by default,
    `get_model(name, dataset)` sets the dataset's own."""

    def __init__(self, mean=MEAN_STD["mnist"][0], std=MEAN_STD["mnist"][1]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x):
        return (x - self.mean) / self.std


def conv_bn(cin, cout, padding=0, pool=False):
    """3x3 conv -> BatchNorm -> ReLU; with `pool`, a 2x2 max-pool before the ReLU. Max and ReLU commute, so that is
    the same function as pooling after the ReLU, with the ReLU on 4x fewer pixels."""
    layers = [nn.Conv2d(cin, cout, 3, padding=padding, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []), nn.ReLU(inplace=True))


def classifier(*blocks, channels):
    """Normalise -> blocks -> global average pooling -> linear to 10 logits."""
    return nn.Sequential(Normalize(), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))


# Dropout sits after the pooling, where there are 4x fewer activations to mask than at full resolution.


def s5(dropout=0.05):
    """< 25k parameters, built to learn fast: 1 epoch to 98.5%."""
    return classifier(
        conv_bn(1, 8),  # 26x26, RF 3
        conv_bn(8, 16, pool=True),  # 24x24, RF 5 -> pool: 12x12, RF 6
        nn.Dropout(dropout),
        conv_bn(16, 32),  # 10x10, RF 10
        conv_bn(32, 32),  # 8x8, RF 14
        conv_bn(32, 32),  # 6x6, RF 18
        channels=32,
    )


def s6(dropout=0.05):
    """< 20k parameters."""
    return classifier(
        conv_bn(1, 16),  # 26x26, RF 3
        conv_bn(16, 16, pool=True),  # 24x24, RF 5 -> pool: 12x12, RF 6
        nn.Dropout(dropout),
        conv_bn(16, 24),  # 10x10, RF 10
        conv_bn(24, 24),  # 8x8, RF 14
        conv_bn(24, 32, padding=1),  # 8x8, RF 18
        channels=32,
    )


def s7(dropout=0.05):
    """< 8k parameters, shaped for speed: one cheap conv at full resolution, then pool; the rest at 13x13 and below."""
    return classifier(
        conv_bn(1, 8, pool=True),  # 26x26, RF 3 -> pool: 13x13, RF 4
        nn.Dropout(dropout),
        conv_bn(8, 12),  # 11x11, RF 8
        conv_bn(12, 16),  # 9x9, RF 12
        conv_bn(16, 16),  # 7x7, RF 16
        conv_bn(16, 16),  # 5x5, RF 20
        channels=16,
    )


def s7_tiny():
    """< 5k parameters: s7's layout with fewer channels and no dropout."""
    return classifier(
        conv_bn(1, 8, pool=True),  # 26x26, RF 3 -> pool: 13x13, RF 4
        conv_bn(8, 8),  # 11x11, RF 8
        conv_bn(8, 12),  # 9x9, RF 12
        conv_bn(12, 12),  # 7x7, RF 16
        conv_bn(12, 16),  # 5x5, RF 20
        channels=16,
    )


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[], nn.Module]
    max_params: int
    target: Target


LAST3 = Target("accuracy >= 99.4% on each of the last 3 epochs, at most 15 epochs", LAST3_MIN, 0.994, 15, 3)
MODELS = {  # each model's training recipe, the parameters chosen for its target, is recipes/<name>.yaml
    "s5": ModelSpec(
        s5,
        25_000,
        Target("after 1 epoch: accuracy >= 98.5%, >= 95% on the training batches", FIRST_EPOCH, 0.985, 1, 1, 0.95),
    ),
    "s6": ModelSpec(s6, 20_000, Target("accuracy >= 99.4% within 20 epochs", BEST_EPOCH, 0.994, 20)),
    "s7": ModelSpec(s7, 8_000, LAST3),
    "s7_tiny": ModelSpec(s7_tiny, 5_000, LAST3),
}


def list_models() -> list[str]:
    return sorted(MODELS)


def has_dropout(name: str) -> bool:
    """Whether the model has a dropout layer (its builder takes `dropout`)."""
    return "dropout" in inspect.signature(MODELS[name].build).parameters


def get_model(name: str, dataset: str = "mnist", dropout: float | None = None) -> nn.Module:
    """A new model, its input normalised with `dataset`'s mean and std (a checkpoint restores them too); `dropout`
    replaces the model's own dropout probability."""
    model = MODELS[name].build(**({} if dropout is None else {"dropout": dropout}))
    model[0].mean.fill_(MEAN_STD[dataset][0])
    model[0].std.fill_(MEAN_STD[dataset][1])
    return model


def recipe_file(name: str) -> Path:
    """The model's registered recipe as a papermill parameters file (`papermill ... -f recipes/s7.yaml`)."""
    return RECIPE_DIR / f"{name}.yaml"


def recipe(name: str) -> dict:
    """The 03_training parameters of the model's registered recipe, `model` included."""
    return yaml.safe_load(recipe_file(name).read_text())


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def is_recipe_run(config: dict) -> bool:
    """Whether a run used its model's registered recipe on all of MNIST's training data and was scored on the test
    set (then its target must hold)."""
    return (
        config["dataset"] == "mnist"
        and config["subset"] is None
        and not config["validation"]
        and all(config[k] == v for k, v in recipe(config["model"]).items())
    )
