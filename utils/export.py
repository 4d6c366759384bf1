"""The trained model as ONNX, for onnxruntime in Python or in a browser (the site's draw page): one file, weights
inside, any batch size; input `image` (N, 1, 28, 28) with pixels in [0, 1], output `logits` (N, 10). The model
normalises its input itself, so the file needs nothing else."""

import copy
import warnings
from pathlib import Path

import torch

from .files import atomic_write


def export_onnx(model: torch.nn.Module, path) -> Path:
    """Write `model` (a copy on the CPU, in eval mode) to `path` as ONNX, atomically."""
    probe = copy.deepcopy(model).cpu().eval()
    example = (torch.rand(2, 1, 28, 28),)

    def write(tmp):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own internals
            torch.onnx.export(
                probe,
                example,
                tmp,
                dynamo=True,
                input_names=["image"],
                output_names=["logits"],
                dynamic_shapes=({0: "batch"},),
                external_data=False,
                verbose=False,
            )

    return atomic_write(path, write)
