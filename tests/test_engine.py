import errno
from pathlib import Path

from utils import engine
from utils.checkpoints import LAST_CHECKPOINT, CheckpointError, read_checkpoint, save_checkpoint
from utils.config import TrainParams, check_params
from utils.data import make_loaders
from utils.datafiles import MEAN_STD
from utils.engine import TrainingDiverged, build, evaluate, fit, make_optimizer, resolve_device
from utils.errors import ParameterError
from utils.files import DiskFullError, write_json
from utils.history import ROW
from utils.models import get_model

import pytest
import torch
from conftest import without_timings

GOOD = dict(model="s7", epochs=2, batch_size=64, lr=0.05, optimizer="sgd", seed=1, device="cpu")


SMALL = dict(GOOD, subset=2000, rotation=10.0, translate=0.1, ema=None, clean_epochs=0)


def small_run(mnist_root, out=None, **params):
    """03's run (`build`, `fit`) on 2,000 training images, scored on 1,000 test digits; returns (run, history)."""
    run = build(check_params({**SMALL, "data_dir": str(mnist_root), **params}), "cpu", eval_images=1000)
    return run, fit(run, out)


def test_same_seed_same_history(mnist_root):
    runs = [small_run(mnist_root)[1] for _ in range(2)]
    assert without_timings(runs[0]) == without_timings(runs[1])
    other = small_run(mnist_root, seed=2)[1]
    assert other[-1]["eval_loss"] != runs[0][-1]["eval_loss"]


def test_stop_after_ends_early_on_the_whole_runs_schedule_and_eval_images_cuts_the_split(mnist_root):
    _, whole = small_run(mnist_root, epochs=3)
    run = build(check_params({**SMALL, "epochs": 3, "data_dir": str(mnist_root)}), "cpu", eval_images=1000)
    early = fit(run, stop_after=2)
    assert without_timings(early) == without_timings(whole[:2])  # the lr planned for 3 epochs: the same numbers
    assert (len(run.eval_loader.labels), run.eval_loader.split) == (1000, "test")


def test_momentum_scale_and_dropout_reach_the_optimizer_augmentation_and_model(mnist_root):
    changed = {"momentum": 0.8, "scale": 0.1, "dropout": 0.2}
    run = build(check_params({**SMALL, "data_dir": str(mnist_root), **changed}), "cpu")
    assert run.train_loader.augment.scale == 0.1
    assert [m.p for m in run.model.modules() if isinstance(m, torch.nn.Dropout)] == [0.2]
    fit(run, stop_after=1)
    assert run.optimizer.param_groups[0]["momentum"] == 0.8  # constant
    adam = build(check_params({**SMALL, "data_dir": str(mnist_root), "optimizer": "adam", "momentum": 0.8}), "cpu")
    assert adam.optimizer.param_groups[0]["betas"] == (0.8, 0.999)
    default = build(check_params({**SMALL, "data_dir": str(mnist_root)}), "cpu")
    assert [m.p for m in default.model.modules() if isinstance(m, torch.nn.Dropout)] == [0.05]  # s7's own
    fit(default, stop_after=1)  # of 2 epochs: the lr has peaked and fallen a little, the momentum risen again
    assert 0.85 < default.optimizer.param_groups[0]["momentum"] < 0.95


def test_history_rows_and_learning(mnist_root):
    _, history = small_run(mnist_root)
    assert [h["epoch"] for h in history] == [1, 2] and all(tuple(h) == ROW and h["split"] == "test" for h in history)
    assert history[1]["eval_loss"] < history[0]["eval_loss"]  # 64 steps on 2,000 images: learning has begun
    assert history[-1]["eval_acc"] > 0.3  # > 3x the 10% of guessing


def test_checkpoint_round_trip_gives_identical_outputs(mnist_root, tmp_path):
    run, history = small_run(mnist_root, tmp_path, epochs=1)
    assert [p.name for p in tmp_path.iterdir()] == [LAST_CHECKPOINT]  # one checkpoint, no temporary file left behind
    ckpt = read_checkpoint(tmp_path / LAST_CHECKPOINT)
    loaded = get_model(ckpt["model_name"])
    loaded.load_state_dict(ckpt["model"])
    x = torch.rand(8, 1, 28, 28)
    assert torch.equal(run.model.eval()(x), loaded.eval()(x))
    assert ckpt["history"] == history and ckpt["params"] == run.params.as_dict() and "state" in ckpt["optimizer"]


def test_a_models_weights_keep_its_datasets_normalisation():
    loaded = get_model("s7")  # MNIST's constants, until the saved weights come in
    loaded.load_state_dict(get_model("s7", "fashion_mnist").state_dict())
    norm = loaded[0]
    assert (norm.mean.item(), norm.std.item()) == pytest.approx(MEAN_STD["fashion_mnist"]) != MEAN_STD["mnist"]


def test_validation_split_is_held_out_of_training(mnist_root):
    train, val = make_loaders(mnist_root, 64, "cpu", validation=True)
    full, test = make_loaders(mnist_root, 64, "cpu")
    assert (len(train.labels), len(val.labels), val.split, test.split) == (50_000, 10_000, "val", "test")
    assert torch.equal(torch.cat([train.images, val.images]), full.images)  # the last 10,000 training images
    _, history = small_run(mnist_root, epochs=1, validation=True)
    assert tuple(history[0]) == ROW and history[0]["split"] == "val"


def test_label_smoothing_changes_training(mnist_root):
    plain = small_run(mnist_root, epochs=1)[1]
    smoothed = small_run(mnist_root, epochs=1, label_smoothing=0.1)[1]
    assert smoothed[0]["train_loss"] > plain[0]["train_loss"]  # smoothed targets: the loss cannot reach 0


def weights_norm(model) -> float:
    return torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n.endswith("weight")]).norm().item()


def test_weight_decay_and_grad_clip_change_a_real_training(mnist_root):
    """32 steps on 2,000 images: weight decay pulls the weights towards 0, and a gradient norm clipped to 0.01 makes
    the steps too small to learn much."""
    plain_run, plain = small_run(mnist_root, epochs=1)
    decayed_run, decayed = small_run(mnist_root, epochs=1, weight_decay=0.05)
    assert weights_norm(decayed_run.model) < 0.97 * weights_norm(plain_run.model)
    clipped = small_run(mnist_root, epochs=1, grad_clip=0.01)[1]
    assert clipped[0]["train_loss"] > plain[0]["train_loss"] + 0.3, (clipped, plain)


def test_mixed_precision_step_scales_unscales_clips_skips_an_infinite_gradient_and_averages():
    """train_step with a GradScaler as on CUDA, here on the CPU (bfloat16 autocast): the clip sees the true gradients
    (unscaled first), a step whose gradient is infinite leaves the weights as they were and halves the scale, and
    the EMA takes in every step."""
    torch.manual_seed(0)
    model = get_model("s7")
    optimizer = make_optimizer(model, TrainParams(lr=0.05))
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
    run, history = small_run(mnist_root, epochs=2, ema=0.9)
    assert evaluate(run.model, run.eval_loader) == (history[-1]["eval_loss"], history[-1]["eval_acc"])
    last = small_run(mnist_root, epochs=2)[0].model  # the same run without the EMA ends with other weights
    assert not torch.equal(last[1][0].weight, run.model[1][0].weight)


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
    last, warm, cold = (small_run(mnist_root, subset=10_000, epochs=1, **r)[1][0]["eval_acc"] for r in runs)
    assert warm >= last - 0.01 and cold < 0.5, (warm, last, cold)


def test_the_last_clean_epochs_train_without_augmentation(mnist_root):
    p = dict(SMALL, subset=1000, batch_size=500, data_dir=str(mnist_root))
    run = build(check_params({**p, "epochs": 4, "clean_epochs": 2}), "cpu", eval_images=500)
    train = run.train_loader
    augment, augmented = train.augment, []

    def counting(x, generator):
        augmented.append(len(epochs_started))
        return augment(x, generator)

    train.augment, epochs_started = counting, []
    fit(run, on_epoch=epochs_started.append)
    assert augmented == [0, 0, 1, 1]  # 2 batches in each of epochs 1 and 2, none in 3 and 4
    assert train.augment is counting  # the loader is left as it was given

    epochs_started = []

    def stop_training_in_epoch_2(module, inputs, output):
        if module.training and len(epochs_started) == 1:
            raise KeyboardInterrupt

    run = build(check_params({**p, "epochs": 2, "clean_epochs": 1}), "cpu", eval_images=500)
    run.train_loader.augment = counting
    run.model.register_forward_hook(stop_training_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):  # a run that dies in a clean epoch leaves the loader as it was given too
        fit(run, on_epoch=epochs_started.append)
    assert run.train_loader.augment is counting


@pytest.mark.parametrize("ema", [None, 0.99])
def test_resumed_run_gives_the_uninterrupted_history(mnist_root, tmp_path, monkeypatch, ema):
    _, uninterrupted = small_run(mnist_root, epochs=3, ema=ema)
    calls = []

    def evaluate_then_stop(model, loader):  # the run "dies" during epoch 2, after last.pt of epoch 1
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(model, loader)

    monkeypatch.setattr(engine, "evaluate", evaluate_then_stop)
    with pytest.raises(KeyboardInterrupt):
        small_run(mnist_root, tmp_path, epochs=3, ema=ema)
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / LAST_CHECKPOINT)["epoch"] == 1
    torch.manual_seed(123)  # whatever the global RNG holds now, resume restores it
    _, resumed = small_run(mnist_root, tmp_path, epochs=3, ema=ema, resume=str(tmp_path / LAST_CHECKPOINT))
    assert without_timings(resumed) == without_timings(uninterrupted)
    assert read_checkpoint(tmp_path / LAST_CHECKPOINT)["epoch"] == 3


def test_checkpoint_of_another_model_is_refused_by_name_before_any_work(mnist_root, tmp_path):
    small_run(mnist_root, tmp_path, epochs=2, subset=256)
    with pytest.raises(ParameterError, match=r"it differs in model='s7' there, 's5' here"):
        build(check_params({**GOOD, "model": "s5", "resume": str(tmp_path / LAST_CHECKPOINT)}), "cpu")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_damaged_checkpoint_is_one_clear_error(tmp_path, content):
    path = tmp_path / "s7.pt"
    if content is None:  # a real checkpoint cut in half, as a full disk would leave it without atomic writes
        run = build(check_params(GOOD), "cpu")
        run.history.append(dict.fromkeys(ROW, 0.5))
        data = save_checkpoint(tmp_path / "full.pt", run).read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"checkpoint .*s7.pt cannot be read \(.*\); it is damaged"):
        read_checkpoint(path)


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"does not exist; give the path of a \.pt file written by a run"):
        read_checkpoint(tmp_path / "nope.pt")


def test_nan_loss_stops_with_a_clear_message(mnist_root):
    run = build(check_params({**SMALL, "epochs": 1, "subset": 256, "data_dir": str(mnist_root)}), "cpu")
    run.train_loader.images = run.train_loader.images.float().fill_(float("nan"))  # every batch gives a NaN loss
    with pytest.raises(TrainingDiverged, match=r"epoch 1/1: loss became nan at batch 1; lower the learning rate"):
        fit(run)


def test_no_checkpoint_from_a_diverged_model(tmp_path):
    run = build(check_params(GOOD), "cpu")
    run.history.append({**dict.fromkeys(ROW, 0.1), "train_loss": float("nan"), "eval_loss": float("nan")})
    with pytest.raises(CheckpointError, match="refusing to save a checkpoint of a diverged model"):
        save_checkpoint(tmp_path / LAST_CHECKPOINT, run)
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
    write_bytes, calls = Path.write_bytes, []

    def disk_fills_on_the_second_checkpoint(path, data):
        calls.append(path.name)
        if path.name.startswith(f".{LAST_CHECKPOINT}.") and len(calls) == 2:
            write_bytes(path, data[: len(data) // 2])  # half of it lands, then the device is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", disk_fills_on_the_second_checkpoint)
    with pytest.raises(DiskFullError) as err:
        small_run(mnist_root, tmp_path, epochs=2)
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
