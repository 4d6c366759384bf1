"""MNIST small-CNN course project: what the notebooks call (data, models, training, plots, checkpoints, export)
and the commands around them (sweeps, the site, make run). First of all, the portable CPU numerics (`numerics`):
import utils before torch."""

from . import numerics  # noqa: F401  (sets the environment before torch loads)
