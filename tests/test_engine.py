import errno
from pathlib import Path

from utils import engine
from utils.checkpoints import LAST_CHECKPOINT, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from utils.config import check_params
from utils.data import Augment, make_loaders
from utils.datafiles import MEAN_STD
from utils.engine import TrainingDiverged, evaluate, fit, make_optimizer, resolve_device, seed_everything
from utils.files import DiskFullError, write_json
from utils.models import get_model

import pytest
import torch
from conftest import without_timings

GOOD = dict(model="s7", epochs=2, batch_size=64, lr=0.05, optimizer="sgd", seed=1, device="cpu")


def small_run(mnist_root, seed=1, subset=2000, epochs=2, name="s7", validation=False, weight_decay=0.0, **fit_options):
    seed_everything(seed)
    train, test = make_loaders(mnist_root, 64, "cpu", Augment(10.0, 0.1), seed, subset, validation=validation)
    test.images, test.labels = test.images[:1000], test.labels[:1000]
    model = get_model(name)
    opt = make_optimizer(model, "sgd", 0.05, weight_decay)
    return model, opt, fit(model, opt, train, test, epochs=epochs, lr_warmup=0.2, **fit_options)


def test_same_seed_same_history(mnist_root):
    runs = [small_run(mnist_root)[2] for _ in range(2)]
    assert without_timings(runs[0]) == without_timings(runs[1])
    other = small_run(mnist_root, seed=2)[2]
    assert other[-1]["test_loss"] != runs[0][-1]["test_loss"]


def test_history_rows_and_learning(mnist_root):
    _, _, history = small_run(mnist_root)
    assert [h["epoch"] for h in history] == [1, 2]
    keys = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_seconds", "seconds"}
    assert set(history[0]) == keys
    assert history[1]["test_loss"] < history[0]["test_loss"]  # 64 steps on 2,000 images: learning has begun
    assert history[-1]["test_acc"] > 0.3  # > 3x the 10% of guessing


def test_checkpoint_round_trip_gives_identical_outputs(mnist_root, tmp_path):
    model, opt, history = small_run(mnist_root, epochs=1)
    path = save_checkpoint(tmp_path, dict(GOOD), model, opt, history)
    assert path.name == f"s7_acc{history[-1]['test_acc']:.4f}.pt"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    loaded, ckpt = load_checkpoint(path, model_name="s7")
    x = torch.rand(8, 1, 28, 28)
    assert torch.equal(model.eval()(x), loaded.eval()(x))
    assert ckpt["history"] == history and ckpt["params"] == GOOD and "state" in ckpt["optimizer"]


def test_a_checkpoint_keeps_its_datasets_normalisation(tmp_path):
    model = get_model("s7", "fashion_mnist")
    history = [dict(epoch=1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5)]
    path = save_checkpoint(
        tmp_path, {**GOOD, "dataset": "fashion_mnist"}, model, make_optimizer(model, "sgd", 0.1), history
    )
    norm = load_checkpoint(path)[0][0]
    assert (norm.mean.item(), norm.std.item()) == pytest.approx(MEAN_STD["fashion_mnist"]) != MEAN_STD["mnist"]


def test_validation_split_is_held_out_of_training(mnist_root):
    train, val = make_loaders(mnist_root, 64, "cpu", validation=True)
    full, test = make_loaders(mnist_root, 64, "cpu")
    assert (len(train.labels), len(val.labels), val.split, test.split) == (50_000, 10_000, "val", "test")
    assert torch.equal(torch.cat([train.images, val.images]), full.images)  # the last 10,000 training images
    _, _, history = small_run(mnist_root, epochs=1, validation=True)
    assert set(history[0]) == {
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "lr",
        "train_seconds",
        "seconds",
    }


def test_label_smoothing_changes_training(mnist_root):
    plain = small_run(mnist_root, epochs=1)[2]
    smoothed = small_run(mnist_root, epochs=1, label_smoothing=0.1)[2]
    assert smoothed[0]["train_loss"] > plain[0]["train_loss"]  # smoothed targets: the loss cannot reach 0


def weights_norm(model) -> float:
    return torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n.endswith("weight")]).norm().item()


def test_weight_decay_and_grad_clip_change_a_real_training(mnist_root):
    """32 steps on 2,000 images: weight decay pulls the weights towards 0, and a gradient norm clipped to 0.01 makes
    the steps too small to learn much."""
    plain_model, _, plain = small_run(mnist_root, epochs=1)
    decayed_model, _, decayed = small_run(mnist_root, epochs=1, weight_decay=0.05)
    assert weights_norm(decayed_model) < 0.97 * weights_norm(plain_model)
    clipped = small_run(mnist_root, epochs=1, grad_clip=0.01)[2]
    assert clipped[0]["train_loss"] > plain[0]["train_loss"] + 0.3, (clipped, plain)


def test_mixed_precision_step_scales_unscales_clips_skips_an_infinite_gradient_and_averages():
    """train_step with a GradScaler as on CUDA, here on the CPU (bfloat16 autocast): the clip sees the true gradients
    (unscaled first), a step whose gradient is infinite leaves the weights as they were and halves the scale, and
    the EMA takes in every step."""
    torch.manual_seed(0)
    model = get_model("s7")
    optimizer = make_optimizer(model, "sgd", 0.05)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=10)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    ema_model = engine.make_ema(model, 0.999)
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    loss, logits = engine.train_step(model, x, y, optimizer, scheduler, scaler, grad_clip=0.01, ema_model=ema_model)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(loss)  # the forward pass ran in mixed precision
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert grads.norm().item() == pytest.approx(0.01, rel=0.01)  # clipped after unscaling: not 0.01 / 1024
    assert scaler.get_scale() == 2.0**10 and ema_model.n_averaged.item() == 1
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "batches" not in k}
    hook = model[-1].weight.register_hook(lambda g: torch.full_like(g, float("inf")))  # an fp16-style overflow
    engine.train_step(model, x, y, optimizer, scheduler, scaler, grad_clip=0.01, ema_model=ema_model)
    hook.remove()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # the step was skipped
    assert scaler.get_scale() == 2.0**9 and ema_model.n_averaged.item() == 2


def test_the_ema_is_what_is_evaluated_and_kept(mnist_root):
    model, _, history = small_run(mnist_root, epochs=2, ema=0.9)
    _, test = make_loaders(mnist_root, 64, "cpu")
    test.images, test.labels = test.images[:1000], test.labels[:1000]
    assert evaluate(model, test) == (history[-1]["test_loss"], history[-1]["test_acc"])
    last = small_run(mnist_root, epochs=2)[0]  # the same run without the EMA ends with other weights
    assert not torch.equal(last[1][0].weight, model[1][0].weight)


def test_warmed_up_ema_keeps_min_of_decay_and_1_plus_t_over_10_plus_t():
    model = torch.nn.Linear(1, 1, bias=False)
    ema_model = engine.make_ema(model, decay=0.3)
    expected = None
    for t, w in enumerate([4.0, 2.0, 1.0, 8.0, 0.0]):  # t updates before this one
        model.weight.data.fill_(w)
        ema_model.update_parameters(model)
        keep = min(0.3, (1 + t) / (10 + t))
        expected = w if t == 0 else keep * expected + (1 - keep) * w
        assert ema_model.module.weight.item() == pytest.approx(expected)
    assert keep == 0.3  # the decay reached its cap within these steps: (1 + 3) / (10 + 3) > 0.3


def test_warmed_up_ema_scores_like_the_last_weights_after_one_epoch(mnist_root):
    """157 steps: a plain 0.999 EMA is still 85% the random initial weights (0.999 ** 157), the warmed-up one
    is not (here 94.8% against the last weights' 94.4%; 1 point allowed on these 1,000 test images)."""
    runs = [dict(), dict(ema=0.999), dict(ema=0.999, ema_warmup=False)]
    last, warm, cold = (small_run(mnist_root, subset=10_000, epochs=1, **r)[2][0]["test_acc"] for r in runs)
    assert warm >= last - 0.01 and cold < 0.5, (warm, last, cold)


def test_the_last_clean_epochs_train_without_augmentation(mnist_root):
    seed_everything(1)
    train, test = make_loaders(mnist_root, 500, "cpu", Augment(10.0, 0.1), 1, subset=1000)
    test.images, test.labels = test.images[:500], test.labels[:500]
    augment, augmented = train.augment, []

    def counting(x, generator):
        augmented.append(len(epochs_started))
        return augment(x, generator)

    train.augment, epochs_started = counting, []
    model = get_model("s7")
    fit(
        model,
        make_optimizer(model, "sgd", 0.05),
        train,
        test,
        epochs=4,
        lr_warmup=0.2,
        clean_epochs=2,
        on_epoch=epochs_started.append,
    )
    assert augmented == [0, 0, 1, 1]  # 2 batches in each of epochs 1 and 2, none in 3 and 4
    assert train.augment is counting  # the loader is left as it was given

    epochs_started = []

    def stop_training_in_epoch_2(module, inputs, output):
        if module.training and len(epochs_started) == 1:
            raise KeyboardInterrupt

    model.register_forward_hook(stop_training_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):  # a run that dies in a clean epoch leaves the loader as it was given too
        opt = make_optimizer(model, "sgd", 0.05)
        fit(model, opt, train, test, epochs=2, lr_warmup=0.2, clean_epochs=1, on_epoch=epochs_started.append)
    assert train.augment is counting


@pytest.mark.parametrize("ema", [None, 0.99])
def test_resumed_run_gives_the_uninterrupted_history(mnist_root, tmp_path, monkeypatch, ema):
    config = check_params({**GOOD, "epochs": 3, "subset": 2000, "ema": ema}).as_dict()
    _, _, uninterrupted = small_run(mnist_root, epochs=3, ema=ema)
    calls = []

    def evaluate_then_stop(model, loader):  # the run "dies" during epoch 2, after last.pt of epoch 1
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(model, loader)

    monkeypatch.setattr(engine, "evaluate", evaluate_then_stop)
    with pytest.raises(KeyboardInterrupt):
        small_run(mnist_root, epochs=3, checkpoint_dir=tmp_path, config=config, ema=ema)
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / LAST_CHECKPOINT)["epoch"] == 1
    torch.manual_seed(123)  # whatever the global RNG holds now, resume restores it
    _, _, resumed = small_run(
        mnist_root, epochs=3, checkpoint_dir=tmp_path, config=config, resume=tmp_path / LAST_CHECKPOINT, ema=ema
    )
    assert without_timings(resumed) == without_timings(uninterrupted)
    assert read_checkpoint(tmp_path / LAST_CHECKPOINT)["epoch"] == 3


def test_checkpoint_of_another_model_is_refused_by_name(mnist_root, tmp_path):
    model, opt, history = small_run(mnist_root, epochs=1, subset=256)
    path = save_checkpoint(tmp_path, dict(GOOD), model, opt, history)
    with pytest.raises(CheckpointError, match=r"holds model 's7', not 's5'; use model='s7' or a checkpoint of 's5'"):
        load_checkpoint(path, model_name="s5")


def test_checkpoint_with_other_shapes_is_one_clear_error(tmp_path):
    model = get_model("s5")  # weights of s5 filed under the name s7
    history = [dict(epoch=1, train_loss=1.0, test_loss=1.0, test_acc=0.5)]
    path = save_checkpoint(tmp_path, dict(GOOD), model, make_optimizer(model, "sgd", 0.05), history)
    with pytest.raises(CheckpointError, match=r"does not fit model 's7' \(.*size mismatch.*\); it was saved from"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_damaged_checkpoint_is_one_clear_error(tmp_path, content):
    path = tmp_path / "s7.pt"
    if content is None:  # a real checkpoint cut in half, as a full disk would leave it without atomic writes
        model = get_model("s7")
        history = [dict(epoch=1, train_loss=1.0, test_loss=1.0, test_acc=0.5)]
        data = save_checkpoint(
            tmp_path, dict(GOOD), model, make_optimizer(model, "sgd", 0.05), history, name="full.pt"
        ).read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"checkpoint .*s7.pt cannot be read \(.*\); it is damaged"):
        load_checkpoint(path)


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"does not exist; give the path of a \.pt file written by a run"):
        read_checkpoint(tmp_path / "nope.pt")


def test_nan_loss_stops_with_a_clear_message(mnist_root):
    seed_everything(0)
    train, test = make_loaders(mnist_root, 64, "cpu", None, 0, subset=256)
    train.images = train.images.float().fill_(float("nan"))  # every batch gives a NaN loss
    model = get_model("s7")
    with pytest.raises(TrainingDiverged, match=r"epoch 1/1: loss became nan at batch 1; lower the learning rate"):
        fit(model, make_optimizer(model, "sgd", 0.05), train, test, epochs=1, lr_warmup=0.2)


def test_no_checkpoint_from_a_diverged_model(tmp_path):
    model = get_model("s7")
    history = [dict(epoch=1, train_loss=float("nan"), test_loss=float("nan"), test_acc=0.1)]
    with pytest.raises(CheckpointError, match="refusing to save a checkpoint of a diverged model"):
        save_checkpoint(tmp_path, dict(GOOD), model, make_optimizer(model, "sgd", 0.05), history)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_counts_accuracy_and_loss_exactly(mnist_root):
    """A "model" that answers 7 for every image: its accuracy is the share of sevens, its loss that of its logits."""
    _, test = make_loaders(mnist_root, 64, "cpu")
    sevens = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    torch.nn.init.zeros_(sevens[1].weight)
    sevens[1].bias.data = torch.nn.functional.one_hot(torch.tensor(7), 10).float()
    loss, acc = evaluate(sevens, test)
    assert acc == pytest.approx(1028 / 10_000)  # the test set's 1,028 sevens
    expected = torch.nn.functional.cross_entropy(sevens[1].bias.expand(10_000, 10), test.labels).item()
    assert loss == pytest.approx(expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_one_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available here; use device='auto' or 'cpu'"):
        resolve_device("cuda")
    assert resolve_device("auto").type in {"cpu", "mps"}


def test_full_disk_while_writing_last_pt_is_one_line_and_keeps_the_previous_one(mnist_root, tmp_path, monkeypatch):
    config = check_params({**GOOD, "epochs": 2, "subset": 2000}).as_dict()
    write_bytes, calls = Path.write_bytes, []

    def disk_fills_on_the_second_checkpoint(path, data):
        calls.append(path.name)
        if path.name.startswith(f".{LAST_CHECKPOINT}.") and len(calls) == 2:
            write_bytes(path, data[: len(data) // 2])  # half of it lands, then the device is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", disk_fills_on_the_second_checkpoint)
    with pytest.raises(DiskFullError) as err:
        small_run(mnist_root, epochs=2, checkpoint_dir=tmp_path, config=config)
    last = tmp_path / LAST_CHECKPOINT
    assert str(err.value) == (
        f"cannot write {last}: no space left on the device; free some space, then continue with -p resume {last}"
    )
    assert read_checkpoint(last)["epoch"] == 1  # the previous last.pt still loads
    assert [p.name for p in tmp_path.iterdir()] == [LAST_CHECKPOINT]  # no half-written temporary file


def test_full_disk_while_writing_metrics_names_the_file(tmp_path, monkeypatch):
    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(DiskFullError, match=r"^cannot write .*metrics.json: no space left on the device; free some "):
        write_json(tmp_path / "metrics.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []
