"""The CUDA path: what can be checked on a CPU is checked here everywhere; the rest needs a CUDA GPU and skips with
one line without one (python -m benchmarks.gpu and make gpu measure it there: RESULTS.md)."""

from utils.config import TrainParams
from utils.engine import build, fit
from utils.models import get_model

import pytest
import torch
import torch.nn.functional as F
from conftest import without_timings

from benchmarks import gpu

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_grouped_copies_compute_and_learn_what_separate_models_do():
    torch.manual_seed(0)
    models = [get_model("s7") for _ in range(3)]
    grouped = gpu.grouped(models)
    for m in [grouped, *models]:
        m.train()
        for layer in m.modules():
            if isinstance(layer, torch.nn.Dropout):  # its masks are drawn differently: the rest must agree
                layer.eval()
    x, y = torch.rand(8, 3, 28, 28), torch.randint(10, (8, 3))
    out = grouped(x)
    separate = torch.stack([m(x[:, i : i + 1]) for i, m in enumerate(models)], 1)
    torch.testing.assert_close(out, separate)
    (F.cross_entropy(out.flatten(0, 1), y.flatten()) * 3).backward()
    for i, m in enumerate(models):
        F.cross_entropy(m(x[:, i : i + 1]), y[:, i]).backward()
    torch.testing.assert_close(grouped.layers[1][0].weight.grad, torch.cat([m[1][0].weight.grad for m in models]))
    torch.testing.assert_close(grouped.layers[-2].bias.grad, torch.cat([m[-1].bias.grad for m in models]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_gpu_benchmark_without_cuda_is_one_line(capsys):
    assert gpu.main([]) is None
    assert capsys.readouterr().out == "gpu benchmark skipped: no CUDA GPU here (torch.cuda.is_available() is False)\n"


def cuda_run(mnist_root, amp, subset=1280, epochs=2):
    return fit(build(TrainParams(epochs=epochs, subset=subset, amp=amp, data_dir=str(mnist_root)), "cuda"))


@needs_cuda
@pytest.mark.parametrize("amp", [True, False])
def test_fit_on_cuda_learns_with_and_without_mixed_precision(mnist_root, amp):
    history = cuda_run(mnist_root, amp)
    assert history[-1]["eval_acc"] > 0.5 and all(torch.isfinite(torch.tensor(h["train_loss"])) for h in history)


@needs_cuda
def test_mixed_precision_and_float32_train_to_different_numbers(mnist_root):
    assert without_timings(cuda_run(mnist_root, True)) != without_timings(cuda_run(mnist_root, False))


@needs_cuda
def test_a_seeded_cuda_run_repeats(mnist_root):
    assert without_timings(cuda_run(mnist_root, True)) == without_timings(cuda_run(mnist_root, True))
