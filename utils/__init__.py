"""MNIST small-CNN course project: data, models, training engine and plots, called by the notebooks."""
