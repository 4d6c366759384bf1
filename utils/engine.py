"""Training and evaluation: the device, `train_step` and `train_epoch`, `predict`/`evaluate`, the EMA of the weights,
`fit` (resumable; one printed line per epoch) and what metrics.json records of a run."""

import random
import re
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import numerics
from .checkpoints import LAST_CHECKPOINT, read_checkpoint, restore, resume_problem, save_checkpoint
from .errors import ParameterError, UserError
from .models import accuracies, count_params, eval_split

SYNC_EVERY = 25  # batches between progress-bar updates (each one waits for the device)


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite."""


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device must exist here (else ParameterError)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if not isinstance(name, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise ParameterError(f"device={name!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"device={name!r} but CUDA is not available here; use device='auto' or 'cpu'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ParameterError("device='mps' but MPS is not available here; use device='auto' or 'cpu'")
    return torch.device(name)


def machine_kind(device) -> str:
    """What fixes a seeded run's exact numbers besides its parameters: on CPU, the portable numerics when they are
    on (`numerics`: the same numbers on any x86-64 CPU with AVX2), else the CPU model and the instruction set
    torch's kernels use; on a GPU, its name; then threads and torch version."""
    device = torch.device(device)
    if device.type == "cuda":
        chip = f" ({torch.cuda.get_device_name(device)})"
    elif device.type == "cpu" and numerics.problem(torch.backends.cpu.get_cpu_capability()) is None:
        chip = ", portable x86-64 AVX2 numerics"
    else:
        chip = f" ({numerics.cpu_name()}, {torch.backends.cpu.get_cpu_capability()})"
    threads = torch.get_num_threads()
    return f"{device.type}{chip}, {threads} thread{'s' * (threads != 1)}, torch {torch.__version__}"


def runs_on(device) -> str:
    """The "runs on" line of a training: its machine kind and, on a CPU without the portable numerics, why not
    (PORTABLE_NUMERICS=0, torch imported first, no AVX2...) on a second line."""
    line = f"runs on {machine_kind(device)}"
    why = numerics.problem(torch.backends.cpu.get_cpu_capability())
    if torch.device(device).type == "cpu" and why is not None:
        line += f"\nnot the portable numerics ({why}): these numbers hold on this CPU model only"
    return line


def device_note() -> str:
    """Which device `device="auto"` trains on here; without a GPU, how to get one on Colab."""
    device = resolve_device()
    if device.type != "cpu":
        return f"training runs on {machine_kind(device)}"
    return (
        f"no GPU in this runtime: training runs on {machine_kind(device)}, several times slower; for a GPU: "
        "Runtime > Change runtime type > a GPU, then run all cells again"
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(model, name: str, lr: float, weight_decay: float = 0.0):
    """SGD with Nesterov momentum, or Adam."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'")


def train_step(model, x, y, optimizer, scheduler, scaler, *, grad_clip=None, label_smoothing=0.0, ema_model=None):
    """One training step on the batch (x, y); returns (loss, logits). With the scaler on (CUDA), the forward pass
    runs in mixed precision and a step whose gradients are not finite is skipped."""
    amp_dtype = torch.float16 if x.device.type == "cuda" else torch.bfloat16
    with torch.autocast(x.device.type, dtype=amp_dtype, enabled=scaler.is_enabled()):
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    if ema_model is not None:
        ema_model.update_parameters(model)
    return loss, logits


def train_epoch(
    model, loader, optimizer, scheduler, scaler, *, grad_clip=None, label_smoothing=0.0, ema_model=None, desc="train"
):
    """`train_step` over `loader`; returns (mean loss, accuracy). Raises TrainingDiverged on a NaN/inf loss."""
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    first_bad = torch.full((), -1, device=device)
    seen = 0
    # A bar redraws in place in Jupyter and a terminal, and is cleared at the end: a saved notebook keeps only
    # fit's line per epoch. Into a log (`make run > log`, CI) there is no bar: runner.execute sets TQDM_DISABLE=1.
    quiet = {} if sys.stdout.isatty() or "ipykernel" in sys.modules else {"disable": True}
    bar = tqdm(loader, desc=desc, mininterval=1.0, ncols=100, file=sys.stdout, leave=False, **quiet)
    for i, (x, y) in enumerate(bar):
        loss, logits = train_step(
            model, x, y, optimizer, scheduler, scaler, grad_clip=grad_clip, label_smoothing=label_smoothing,
            ema_model=ema_model,
        )  # fmt: skip
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), i, first_bad)
        loss_sum += loss.detach().float() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if i % SYNC_EVERY == SYNC_EVERY - 1 or i == len(loader) - 1:
            if first_bad.item() >= 0:
                bar.close()
                raise TrainingDiverged(
                    f"{desc}: loss became {loss.item()} at batch {first_bad.item() + 1}; "
                    f"lower the learning rate (now {scheduler.get_last_lr()[0]:.3g}) or set grad_clip"
                )
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.2%}", refresh=False)
    bar.close()
    return loss_sum.item() / seen, correct.item() / seen


@torch.inference_mode()
def predict(model, loader):
    """Logits and labels for a whole loader (model in eval mode), on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    logits, labels = zip(*[(model(x.to(device)).float(), y.to(device)) for x, y in loader], strict=True)
    return torch.cat(logits), torch.cat(labels)


def evaluate(model, loader):
    """(mean cross-entropy, accuracy) over a loader."""
    logits, labels = predict(model, loader)
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def ema_update(decay: float):
    """An EMA update whose decay warms up: min(decay, (1 + t) / (10 + t)) after t updates (as TensorFlow's and timm's
    EMA do), so the EMA forgets the random initial weights within the first epoch instead of over thousands of
    steps. For torch's AveragedModel (multi_avg_fn); its update count is part of the checkpoint."""

    @torch.no_grad()
    def update(ema, current, updates):
        keep = torch.clamp((1 + updates) / (10 + updates), max=decay)
        if torch.is_floating_point(ema[0]):
            torch._foreach_lerp_(ema, current, [(1 - keep).to(ema[0].dtype)] * len(ema))
        else:  # BatchNorm's batch counters
            torch._foreach_copy_(ema, current)

    return update


def make_ema(model, decay, warm_up=True):
    """The EMA: an exponential moving average of the weights and the BatchNorm statistics, updated every step; with
    `warm_up`, its decay starts low (`ema_update`)."""
    update = ema_update(decay) if warm_up else torch.optim.swa_utils.get_ema_multi_avg_fn(decay)
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def fit(
    model,
    optimizer,
    train_loader,
    eval_loader,
    *,
    epochs: int,
    lr_warmup: float,
    grad_clip=None,
    label_smoothing=0.0,
    ema=None,
    ema_warmup=True,
    clean_epochs=0,
    amp=False,
    checkpoint_dir=None,
    config=None,
    resume=None,
    on_epoch=None,
):
    """Train for `epochs` with OneCycle: lr rises to the optimizer's lr over the first `lr_warmup` fraction of the
    steps, then anneals; evaluates on `eval_loader` (test or validation split) after each epoch; returns the
    per-epoch history.

    With `ema` (a decay such as 0.999) an exponential moving average of the weights is kept (its decay warmed up
    unless `ema_warmup` is False: `ema_update`); the EMA's weights are the ones evaluated, and `model` holds them
    when `fit` returns. The last `clean_epochs` epochs (all of them if there are fewer) train on the images as they
    are: `train_loader`'s augmentation is off for them. With `amp` on a CUDA GPU the forward pass runs in float16
    mixed precision with a GradScaler; otherwise everything runs in float32.

    With `checkpoint_dir` (and the run's `config`), `last.pt` is saved there after every epoch; `resume` (the
    path of such a file) continues that run where it stopped, with the same numbers as an uninterrupted run; a
    file that cannot be resumed with `config` raises ParameterError before any work.
    `on_epoch(row)` is called with each epoch's history row (e.g. `tracking.TensorBoardLog.epoch`).
    """
    if resume is not None and (problem := resume_problem(resume, config)):
        raise ParameterError(f"parameter resume={resume!r} is invalid: expected {problem}")
    device = next(model.parameters()).device
    max_lr = optimizer.param_groups[0]["lr"]
    steps = epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(  # OneCycle divides by (warm-up steps - 1): keep >= 2 of them
        optimizer, max_lr=max_lr, total_steps=steps, pct_start=max(lr_warmup, 2 / steps)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")  # AMP on CUDA only
    ema_model = None if ema is None else make_ema(model, ema, ema_warmup)
    history = (
        []
        if resume is None
        else restore(read_checkpoint(resume, device), model, optimizer, scheduler, train_loader, ema_model)
    )
    for row in history:  # a resumed run shows the epochs it continues from too
        print(epoch_line(row, epochs), flush=True)
    split = eval_loader.split
    for epoch in range(len(history) + 1, epochs + 1):
        start = time.perf_counter()
        lr = scheduler.get_last_lr()[0]
        desc = f"epoch {epoch}/{epochs}"
        with train_loader.augmented(epoch <= epochs - clean_epochs):
            train_loss, train_acc = train_epoch(
                model,
                train_loader,
                optimizer,
                scheduler,
                scaler,
                grad_clip=grad_clip,
                label_smoothing=label_smoothing,
                ema_model=ema_model,
                desc=desc,
            )
        train_seconds = time.perf_counter() - start
        eval_loss, eval_acc = evaluate(model if ema_model is None else ema_model.module, eval_loader)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            f"{split}_loss": eval_loss,
            f"{split}_acc": eval_acc,
            "lr": lr,
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - start,
        }
        history.append(row)
        print(epoch_line(row, epochs), flush=True)
        if checkpoint_dir is not None:
            save_checkpoint(
                checkpoint_dir, config, model, optimizer, history, LAST_CHECKPOINT, scheduler, train_loader, ema_model
            )
        if on_epoch is not None:
            on_epoch(row)
    if ema_model is not None:
        model.load_state_dict(ema_model.module.state_dict())
    return history


def epoch_line(row: dict, epochs: int) -> str:
    """One epoch of a history as the line fit prints (the executed notebook's record of the run)."""
    split = eval_split([row])
    return (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.2%} | {split} loss "
        f"{row[f'{split}_loss']:.4f} acc {row[f'{split}_acc']:.2%} | lr {row['lr']:.4f} | {row['seconds']:.1f} s"
    )


def run_metrics(config, model, history, checkpoint) -> dict:
    """What a training run writes to metrics.json: its checked parameters (with the device it ran on) and results
    (accuracies as fractions, named after the split evaluated: `best_test_acc`, or `best_val_acc` for a run with a
    validation split)."""
    split, acc = eval_split(history), accuracies(history)
    device = next(model.parameters()).device
    return {
        **config,
        "device": str(device),
        "params": count_params(model),
        "epochs": len(history),
        "history": history,
        f"best_{split}_acc": max(acc),
        f"final_{split}_acc": acc[-1],
        "train_seconds": sum(h["train_seconds"] for h in history),
        "seconds": sum(h["seconds"] for h in history),
        "checkpoint": str(checkpoint),
        "machine": machine_kind(device),
    }
