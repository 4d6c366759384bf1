"""MNIST small-CNN course project: what the notebooks import to design, augment and train (data, models, the
training loop, checkpoints, parameters, plots, export). First of all, the portable CPU numerics (`numerics`):
import utils before torch. What runs and publishes the notebooks is the `runner` package."""

from . import numerics  # noqa: F401  (sets the environment before torch loads)
