"""MNIST small-CNN course project: what the notebooks import to design, augment and train (data, models, the
training loop, checkpoints, parameters, plots, export). Importing it changes nothing in the process: the portable
CPU numerics are turned on by `numerics.apply()`, called before torch loads. What runs and publishes the notebooks
is the `runner` package."""
