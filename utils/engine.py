"""Training and evaluation: `train_epoch`, `predict`/`evaluate`, `fit`, checkpoints and metrics files."""

import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .files import atomic_write
from .models import get_model

SYNC_EVERY = 25  # batches between progress-bar updates (each one waits for the device)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device must exist."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here; use device='auto' or 'cpu'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' but MPS is not available here; use device='auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(model, name: str = "sgd", lr: float = 0.1, weight_decay: float = 0.0):
    """SGD with Nesterov momentum, or Adam."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'")


def train_epoch(model, loader, optimizer, scheduler, scaler, grad_clip=None, desc="train"):
    """One pass over `loader`; returns (mean loss, accuracy). Raises TrainingDiverged on a NaN/inf loss."""
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    first_bad = torch.full((), -1, device=device)
    seen = 0
    bar = tqdm(loader, desc=desc, mininterval=1.0, dynamic_ncols=False, ncols=100)
    for i, (x, y) in enumerate(bar):
        with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
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


def fit(model, optimizer, train_loader, test_loader, epochs: int, warmup=0.2, grad_clip=None):
    """Train for `epochs` with OneCycle: lr rises to the optimizer's lr over the first `warmup` fraction of the
    steps, then anneals; returns the per-epoch history."""
    device = next(model.parameters()).device
    max_lr = optimizer.param_groups[0]["lr"]
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=len(train_loader), pct_start=warmup
    )
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")  # AMP on CUDA only
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        lr = scheduler.get_last_lr()[0]
        desc = f"epoch {epoch}/{epochs}"
        train_loss, train_acc = train_epoch(model, train_loader, optimizer, scheduler, scaler, grad_clip, desc)
        train_seconds = time.perf_counter() - start
        test_loss, test_acc = evaluate(model, test_loader)
        row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc,
                   lr=lr, train_seconds=train_seconds, seconds=time.perf_counter() - start)
        history.append(row)
        print(f"{desc}: test loss {test_loss:.4f}, test accuracy {test_acc:.2%} ({row['seconds']:.1f} s)", flush=True)
    return history


def format_history(history) -> str:
    """The per-epoch history as a fixed-width text table."""
    lines = [f"{'epoch':>5} {'train loss':>10} {'train acc':>9} {'test loss':>9} {'test acc':>8} {'lr':>8} {'s':>6}"]
    for h in history:
        lines.append(
            f"{h['epoch']:>5} {h['train_loss']:>10.4f} {h['train_acc']:>9.2%} {h['test_loss']:>9.4f} "
            f"{h['test_acc']:>8.2%} {h['lr']:>8.4f} {h['seconds']:>6.1f}"
        )
    return "\n".join(lines)


def save_checkpoint(out_dir, model_name, model, optimizer, history, params) -> Path:
    """Save model + optimizer state, history and parameters as `<model>_acc<test acc>.pt`."""
    acc = history[-1]["test_acc"]
    if not math.isfinite(acc):
        raise TrainingDiverged("refusing to save a checkpoint of a diverged model")
    state = dict(model_name=model_name, model=model.state_dict(), optimizer=optimizer.state_dict(),
                 history=history, params=params)
    return atomic_write(Path(out_dir) / f"{model_name}_acc{acc:.4f}.pt", lambda p: torch.save(state, p))


def load_checkpoint(path, device="cpu"):
    """Rebuild the model named in a checkpoint and load its weights; returns (model, checkpoint dict)."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    model = get_model(ckpt["model_name"]).to(device)
    model.load_state_dict(ckpt["model"])
    return model, ckpt


def run_metrics(config, n_params, history, checkpoint) -> dict:
    """What a training run writes to metrics.json: its checked parameters and results (accuracies as fractions)."""
    acc = [h["test_acc"] for h in history]
    return {
        **config, "params": n_params, "epochs": len(history), "history": history, "best_test_acc": max(acc),
        "final_test_acc": acc[-1], "train_seconds": sum(h["train_seconds"] for h in history),
        "seconds": sum(h["seconds"] for h in history),
        "checkpoint": str(checkpoint), "torch": torch.__version__,
    }
