import json

import pytest
import torch

from utils.config import ParameterError, check_params
from utils.data import Augment, make_loaders
from utils.engine import (
    TrainingDiverged,
    evaluate,
    fit,
    load_checkpoint,
    make_optimizer,
    resolve_device,
    save_checkpoint,
    seed_everything,
)
from utils.files import write_json
from utils.models import get_model

GOOD = dict(model="s7", epochs=2, batch_size=64, lr=0.05, optimizer="sgd", seed=1, device="cpu")


def small_run(mnist_root, seed=1, subset=2000, epochs=2, name="s7"):
    seed_everything(seed)
    train, test = make_loaders(mnist_root, 64, "cpu", Augment(), seed, subset)
    test.images, test.labels = test.images[:1000], test.labels[:1000]
    model = get_model(name)
    opt = make_optimizer(model, "sgd", 0.05)
    return model, opt, fit(model, opt, train, test, epochs)


def test_same_seed_same_history(mnist_root):
    runs = [small_run(mnist_root)[2] for _ in range(2)]
    strip = [[{k: v for k, v in h.items() if not k.endswith("seconds")} for h in run] for run in runs]
    assert strip[0] == strip[1]
    other = small_run(mnist_root, seed=2)[2]
    assert other[-1]["test_loss"] != runs[0][-1]["test_loss"]


def test_history_rows_and_learning(mnist_root):
    _, _, history = small_run(mnist_root)
    assert [h["epoch"] for h in history] == [1, 2]
    keys = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_seconds", "seconds"}
    assert set(history[0]) == keys
    assert all(0 <= h["train_acc"] <= 1 and 0 <= h["test_acc"] <= 1 for h in history)
    assert history[1]["test_loss"] < history[0]["test_loss"]  # 64 steps on 2,000 images: learning has begun
    assert history[-1]["test_acc"] > 0.3  # > 3x the 10% of guessing


def test_checkpoint_round_trip_gives_identical_outputs(mnist_root, tmp_path):
    model, opt, history = small_run(mnist_root, epochs=1)
    path = save_checkpoint(tmp_path, "s7", model, opt, history, dict(GOOD))
    assert path.name == f"s7_acc{history[-1]['test_acc']:.4f}.pt"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    loaded, ckpt = load_checkpoint(path)
    x = torch.rand(8, 1, 28, 28)
    assert torch.equal(model.eval()(x), loaded.eval()(x))
    assert ckpt["history"] == history and ckpt["params"] == GOOD and "state" in ckpt["optimizer"]


def test_nan_loss_stops_with_a_clear_message(mnist_root):
    seed_everything(0)
    train, test = make_loaders(mnist_root, 64, "cpu", None, 0, subset=256)
    train.images = train.images.float().fill_(float("nan"))  # every batch gives a NaN loss
    model = get_model("s7")
    with pytest.raises(TrainingDiverged, match=r"epoch 1/1: loss became nan at batch 1; lower the learning rate"):
        fit(model, make_optimizer(model), train, test, epochs=1)


def test_no_checkpoint_from_a_diverged_model(tmp_path):
    model = get_model("s7")
    history = [dict(epoch=1, test_acc=float("nan"))]
    with pytest.raises(TrainingDiverged):
        save_checkpoint(tmp_path, "s7", model, make_optimizer(model), history, {})
    assert list(tmp_path.iterdir()) == []


def test_evaluate_counts_accuracy_exactly(mnist_root):
    _, test = make_loaders(mnist_root, 64, "cpu", subset=64)
    model = get_model("s7")
    loss, acc = evaluate(model, test)
    assert 0 <= acc <= 1 and loss > 0
    assert acc * 10_000 == pytest.approx(round(acc * 10_000))


def test_write_json_is_complete_json(tmp_path):
    path = write_json(tmp_path / "m.json", {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_one_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available here; use device='auto' or 'cpu'"):
        resolve_device("cuda")
    assert resolve_device("auto").type in {"cpu", "mps"}


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(model="s99"), "parameter model='s99' is invalid: expected one of s5, s6, s7"),
        (dict(epochs=0), "parameter epochs=0 is invalid: expected an integer >= 1"),
        (dict(epochs=2.5), "parameter epochs=2.5 is invalid"),
        (dict(batch_size=0), "parameter batch_size=0 is invalid: expected an integer in 1..60000"),
        (dict(batch_size=500, subset=100), "parameter batch_size=500 is invalid: expected an integer in 1..100"),
        (dict(lr=float("nan")), "parameter lr=nan is invalid: expected a finite number > 0"),
        (dict(lr=-1), "parameter lr=-1 is invalid"),
        (dict(optimizer="rmsprop"), "parameter optimizer='rmsprop' is invalid: expected one of sgd, adam"),
        (dict(subset=0), "parameter subset=0 is invalid"),
        (dict(grad_clip=0), "parameter grad_clip=0 is invalid: expected None or a finite number > 0"),
        (dict(warmup=1.5), "parameter warmup=1.5 is invalid: expected a fraction of the training steps"),
    ],
)
def test_bad_parameters_name_the_parameter_and_what_is_accepted(change, message):
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(".", r"\.")):
        check_params(**{**GOOD, **change})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_parameter_without_cuda_is_rejected_before_any_work():
    with pytest.raises(ParameterError, match="parameter device='cuda' is invalid: .*CUDA is not available here"):
        check_params(**{**GOOD, "device": "cuda"})


def test_output_dir_that_is_a_file_is_rejected(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ParameterError, match="output_dir"):
        check_params(**GOOD, output_dir=f)
