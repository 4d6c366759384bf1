"""MNIST small-CNN course project: what the notebooks call (data, models, training, plots, checkpoints, export)
and the commands around them (sweeps, the site, make run)."""
