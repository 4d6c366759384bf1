"""Training and evaluation: the device, `train_step` and `train_epoch`, `predict`/`evaluate`, the EMA of the weights,
a run built from its parameters (`build`), `fit` (resumable; one printed line per epoch) and what metrics.json
records of a run."""

import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import OneCycleLR
from tqdm import tqdm

from . import numerics
from .checkpoints import LAST_CHECKPOINT, restore, resumable, save_checkpoint
from .config import DEVICE, TrainParams
from .data import Augment, TensorLoader, make_loaders
from .errors import ParameterError, UserError
from .history import ROW, epoch_line, results
from .models import count_params, get_model

SYNC_EVERY = 25  # batches between progress-bar updates (each one waits for the device)


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite."""


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device must exist here (else ParameterError)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if not isinstance(name, str) or not DEVICE.fullmatch(name):
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


def make_optimizer(model, p: TrainParams):
    """SGD with Nesterov momentum, or Adam (the momentum is its beta1): the momentum `p.momentum`, or with None,
    what `start`'s OneCycle schedule sets at every step."""
    momentum = 0.95 if p.momentum is None else p.momentum  # 0.95: where OneCycle starts it
    if p.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), p.lr, betas=(momentum, 0.999), weight_decay=p.weight_decay)
    return torch.optim.SGD(model.parameters(), p.lr, momentum=momentum, nesterov=True, weight_decay=p.weight_decay)


def train_step(model, x, y, optimizer, scheduler, scaler, *, grad_clip=None, label_smoothing=0.0, ema_model=None):
    """One training step on the batch (x, y); returns (loss, logits). With the scaler on (`amp` on CUDA), the forward
    pass runs in mixed precision and a step whose gradients are not finite is skipped."""
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


def train_epoch(run, desc="train"):
    """`train_step` over the run's training batches; returns (mean loss, accuracy). Raises TrainingDiverged on a
    NaN/inf loss."""
    model, loader, p = run.model, run.train_loader, run.params
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
            model, x, y, run.optimizer, run.scheduler, run.scaler, grad_clip=p.grad_clip,
            label_smoothing=p.label_smoothing, ema_model=run.ema_model,
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
                    f"lower the learning rate (now {run.scheduler.get_last_lr()[0]:.3g}) or set grad_clip"
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


@dataclass
class Run:
    """A training run built from its parameters by `build`: what `fit` trains, and what a checkpoint saves."""

    params: TrainParams
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_loader: TensorLoader
    eval_loader: TensorLoader
    scheduler: OneCycleLR
    scaler: torch.amp.GradScaler
    ema_model: torch.optim.swa_utils.AveragedModel | None
    history: list[dict]  # the epochs trained so far: a resumed run's come from its checkpoint

    @property
    def evaluated(self) -> torch.nn.Module:
        """The weights evaluated and kept: the EMA's, or the trained ones without an EMA."""
        return self.model if self.ema_model is None else self.ema_model.module


def build(p: TrainParams, device, eval_images: int | None = None) -> Run:
    """The run `p` describes, on `device`: seeded, its augmentation, loaders (the evaluation split cut to its first
    `eval_images`, if given), model and optimizer, then `start`. A `p.resume` that cannot be resumed with `p`
    raises ParameterError before any work (`checkpoints.resumable`)."""
    device = torch.device(device)
    checkpoint = None if p.resume is None else resumable(p, device)
    seed_everything(p.seed)
    augment = Augment(p.rotation, p.translate, p.scale, p.erase)
    train_loader, eval_loader = make_loaders(
        p.data_dir, p.batch_size, device, augment, p.seed, p.subset, dataset=p.dataset, validation=p.validation,
        eval_images=eval_images,
    )  # fmt: skip
    model = get_model(p.model, p.dataset, p.dropout).to(device)
    optimizer = make_optimizer(model, p)
    return start(p, model, optimizer, train_loader, eval_loader, checkpoint)


def start(p: TrainParams, model, optimizer, train_loader, eval_loader, checkpoint=None) -> Run:
    """A run of `p` with its model, optimizer and loaders: the OneCycle schedule (the lr rises to `p.lr` over the
    first `p.lr_warmup` of the steps, then anneals; without `p.momentum`, the momentum falls from 0.95 to 0.85 as
    the lr rises, and back), the mixed-precision scaler (`p.amp`, CUDA only) and the EMA; all of it put back to
    where `checkpoint` (read from `p.resume`) stopped, if given."""
    device = next(model.parameters()).device
    steps = p.epochs * len(train_loader)
    warmup = max(p.lr_warmup, 2 / steps)  # OneCycle divides by (warm-up steps - 1): keep >= 2 of them
    scheduler = OneCycleLR(optimizer, p.lr, total_steps=steps, pct_start=warmup, cycle_momentum=p.momentum is None)
    scaler = torch.amp.GradScaler(device.type, enabled=p.amp and device.type == "cuda")
    ema_model = None if p.ema is None else make_ema(model, p.ema, p.ema_warmup)
    run = Run(p, model, optimizer, train_loader, eval_loader, scheduler, scaler, ema_model, [])
    if checkpoint is not None:
        restore(checkpoint, run)
    return run


def fit(run: Run, out=None, stop_after: int | None = None, on_epoch=None) -> list[dict]:
    """Train `run` to its last epoch (or to epoch `stop_after`), one line per epoch; returns the history. Each
    epoch trains on every batch, then the evaluated weights (`Run.evaluated`) are scored on the evaluation split.
    The last `clean_epochs` epochs train on the images as they are, without augmentation. With `out`, `last.pt`
    is saved there after every epoch (a resumed run continues from it with the numbers of an uninterrupted one);
    `on_epoch(row)` is called with each epoch's row. At the end `run.model` holds the evaluated weights."""
    p, history = run.params, run.history
    for row in history:  # a resumed run shows the epochs it continues from too
        print(epoch_line(row, p.epochs), flush=True)
    for epoch in range(len(history) + 1, (stop_after or p.epochs) + 1):
        began = time.perf_counter()
        lr = run.scheduler.get_last_lr()[0]
        with run.train_loader.augmented(epoch <= p.epochs - p.clean_epochs):
            train_loss, train_acc = train_epoch(run, desc=f"epoch {epoch}/{p.epochs}")
        train_seconds = time.perf_counter() - began
        eval_loss, eval_acc = evaluate(run.evaluated, run.eval_loader)
        seconds = time.perf_counter() - began
        values = (epoch, run.eval_loader.split, train_loss, train_acc, eval_loss, eval_acc, lr, train_seconds, seconds)
        row = dict(zip(ROW, values, strict=True))
        history.append(row)
        print(epoch_line(row, p.epochs), flush=True)
        if out is not None:
            save_checkpoint(Path(out) / LAST_CHECKPOINT, run)
        if on_epoch is not None:
            on_epoch(row)
    if run.ema_model is not None:
        run.model.load_state_dict(run.ema_model.module.state_dict())
    return history


def run_metrics(run: Run, out) -> dict:
    """What a training run writes to metrics.json: its checked parameters (with the device it ran on), its history
    and results (`history.results`: accuracies as fractions, on the split named by `split`), its checkpoint (the
    `last.pt` that `fit(run, out)` wrote)."""
    device = next(run.model.parameters()).device
    return {
        **run.params.as_dict(),
        "device": str(device),
        "params": count_params(run.model),
        "epochs": len(run.history),
        "history": run.history,
        **results(run.history),
        "checkpoint": str(Path(out) / LAST_CHECKPOINT),
        "machine": machine_kind(device),
    }
