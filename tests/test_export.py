"""The ONNX export against PyTorch, on all 10,000 test digits, run by onnxruntime."""

from utils.data import make_loaders
from utils.engine import predict
from utils.export import export_onnx

import numpy as np
import onnxruntime as ort
import torch
from test_engine import small_run

from runner.evidence import COMMITTED_ONNX, committed_metrics


def onnx_logits(path, images) -> np.ndarray:
    """Logits of the ONNX model at `path` for uint8 images (N, [1,] 28, 28), in batches of 1,000."""
    session = ort.InferenceSession(str(path))
    x = images.reshape(-1, 1, 28, 28).float().numpy() / 255
    return np.concatenate([session.run(["logits"], {"image": x[i : i + 1000]})[0] for i in range(0, len(x), 1000)])


def test_exported_model_predicts_what_pytorch_predicts_on_the_test_set(mnist_root, tmp_path):
    model = small_run(mnist_root, subset=10_000, epochs=1)[0].model
    path = export_onnx(model, tmp_path / "s7.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["s7.onnx"] and path.stat().st_size < 100_000  # one small file
    _, test = make_loaders(mnist_root, 500, "cpu")
    logits, labels = predict(model, test)
    exported = onnx_logits(path, test.images)
    assert np.abs(exported - logits.numpy()).max() < 1e-4
    assert (exported.argmax(1) == logits.argmax(1).numpy()).all()
    assert (logits.argmax(1) == labels).float().mean() > 0.9  # a trained model (157 steps), not a constant one


def test_committed_onnx_model_scores_the_committed_runs_final_accuracy(mnist_root):
    """results/03_training.onnx comes from the committed 03 run (make notebooks): its accuracy, to the image."""
    final = committed_metrics()["final_acc"]
    _, test = make_loaders(mnist_root, 500, "cpu")
    correct = int((torch.from_numpy(onnx_logits(COMMITTED_ONNX, test.images)).argmax(1) == test.labels).sum())
    assert correct == round(final * 10_000)
