"""Speed benchmark: the course's reference recipe and this project's s7 pipeline, side by side in one process.

    python -m benchmarks.speed            # full run, what the README quotes (about 15 min on 2 CPU cores)
    python -m benchmarks.speed --quick    # 200 batches of each, no accuracy target (about 1 min)

Same process, data and seed: (1) `benchmarks/reference.py` as the course writes it (DataLoader + PIL, plain loop);
(2) `s7` with its recipe through `utils`, as 03_training.ipynb trains it; (3) the reference net, optimizer and batch
size through the project's loader and engine (pipeline gains apart from model gains); then the reference net's step
alone on one fixed batch (a loader that cost nothing: the most any pipeline could gain), and s7's first epoch in new
processes with and without the portable numerics, in turns. -> benchmarks/results/speed[-quick].{md,json}
"""

import math
import resource
import time
from pathlib import Path

from utils import numerics
from utils.config import TrainParams
from utils.data import Augment, make_loaders
from utils.datafiles import DataError, prepare_data
from utils.engine import build, evaluate, fit, machine_kind, resolve_device, seed_everything, start
from utils.files import atomic_write, write_json
from utils.models import Normalize, count_params, recipe

import torch
from torch import nn

from benchmarks.reference import (
    BATCH_SIZE,
    EPOCHS,
    LR,
    ROTATION,
    reference_loaders,
    reference_net,
    reference_optimizer,
    reference_train_epoch,
)
from benchmarks.step_options import time_steps
from runner import kinds
from runner.cli import ArgumentParser

TARGET, SEED, QUICK_BATCHES = 0.994, 1, 200
RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_WARMUP = 0.2  # the engine always runs OneCycle: the reference net through it warms up over 20% of its steps


def peak_memory_mb(device, reset=False) -> float | None:
    """Peak CUDA memory allocated, or this process's peak RSS (DataLoader workers not included); with `reset`,
    start a new peak window instead (on Linux: elsewhere the peak is the whole process's)."""
    if device.type == "cuda":
        return torch.cuda.reset_peak_memory_stats() if reset else torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status")
    if not status.exists():
        return None if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if reset:
        return Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM
    return next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM")) / 1024


def summarize(pipeline, model, net, n_train, batch_size, setup_seconds, history, device) -> dict:
    """Per-run figures: speed, time to the first epoch at >= 99.4% test accuracy, final accuracy, memory."""
    acc = [h["eval_acc"] for h in history]
    hit = next((i for i, a in enumerate(acc) if a >= TARGET), None)
    train_seconds = sum(h["train_seconds"] for h in history)
    return dict(
        pipeline=pipeline, model=model, params=count_params(net), batch_size=batch_size, train_images=n_train,
        epochs=len(history), seconds_per_epoch=train_seconds / len(history),
        images_per_second=n_train * len(history) / train_seconds, epochs_to_target=None if hit is None else hit + 1,
        seconds_to_target=None if hit is None else setup_seconds + sum(h["seconds"] for h in history[: hit + 1]),
        final_test_acc=acc[-1], wall_seconds=setup_seconds + sum(h["seconds"] for h in history),
        peak_memory_mb=peak_memory_mb(device), history=history,
    )  # fmt: skip


def run_reference(root, device, epochs, n_train, workers) -> dict:
    """The reference recipe: DataLoader + PIL transforms, the plain loop, evaluation after each epoch."""
    seed_everything(SEED)
    peak_memory_mb(device, reset=True)
    start = time.perf_counter()
    train, test = reference_loaders(root, workers=workers, pin_memory=device.type == "cuda", n_train=n_train)
    model = reference_net().to(device)
    optimizer = reference_optimizer(model)
    setup, history = time.perf_counter() - start, []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        reference_train_epoch(model, train, optimizer, device, desc=f"reference {epoch}/{epochs}")
        torch.cuda.synchronize() if device.type == "cuda" else None
        train_seconds = time.perf_counter() - start
        loss, acc = evaluate(model, test)
        seconds = time.perf_counter() - start
        history.append(dict(epoch=epoch, split="test", eval_loss=loss, eval_acc=acc, train_seconds=train_seconds,
                            seconds=seconds))  # fmt: skip
        print(f"reference {epoch}/{epochs}: test accuracy {acc:.2%} ({seconds:.1f} s)", flush=True)
    pipeline = f"reference: DataLoader + PIL, plain loop, {workers} workers"
    return summarize(pipeline, "reference", model, len(train.dataset), BATCH_SIZE, setup, history, device)


def run_engine(root, device, name, epochs, n_train) -> dict:
    """A model through the project's path (tensor loader on the device, batched augmentation, `fit`): s7 with its
    recipe, as 03_training trains it (`build`), or the reference net with its optimizer, lr, batch size and
    rotation (only the loader and engine differ: `start`, whose OneCycle schedule moves the lr and the momentum)."""
    peak_memory_mb(device, reset=True)
    began = time.perf_counter()
    if name == "s7":  # --quick: one augmented epoch
        r = recipe("s7")
        pipeline, epochs = "project: s7 recipe, tensor loader + engine", epochs or r["epochs"]
        clean = r["clean_epochs"] if epochs == r["epochs"] else 0
        p = TrainParams(
            **{**r, "epochs": epochs, "clean_epochs": clean, "seed": SEED, "subset": n_train, "data_dir": root}
        )
        run = build(p, device)
    else:
        pipeline = "reference net and optimizer, tensor loader + engine"
        p = TrainParams(epochs=1, batch_size=BATCH_SIZE, lr=LR, lr_warmup=REFERENCE_WARMUP, ema=None, clean_epochs=0,
                        seed=SEED, subset=n_train, data_dir=root)  # fmt: skip
        seed_everything(SEED)
        augment = Augment(rotation=ROTATION, translate=0.0, scale=0.0)
        train, test = make_loaders(root, BATCH_SIZE, device, augment, SEED, subset=n_train)
        model = nn.Sequential(Normalize(), reference_net()).to(device)
        run = start(p, model, reference_optimizer(model), train, test)
    setup = time.perf_counter() - began
    history = fit(run)
    return summarize(pipeline, name, run.model, len(run.train_loader.labels), p.batch_size, setup, history, device)


def reference_step_seconds_per_epoch(root, device, n_train, steps) -> float:
    """The reference net's forward + backward + SGD step alone, repeated on one fixed batch of the reference loader
    (real digits: random pixels make a step slower), times the steps in an epoch."""
    seed_everything(SEED)
    x, y = next(iter(reference_loaders(root, n_train=BATCH_SIZE)[0]))
    return time_steps(reference_net().to(device), x.to(device), y.to(device), steps) * math.ceil(n_train / BATCH_SIZE)


def numerics_cost(n_train, turns=2) -> dict:
    """s7's recipe, its first epoch's training seconds in new processes with the portable numerics and without
    (`PORTABLE_NUMERICS=0`: this CPU's own best kernels), trained in turns so that the machine's drift hits both;
    scored on 500 test digits (the epoch is what is timed)."""
    envs = {"portable": {}, "unpinned": {numerics.SWITCH: "0"}}
    runs = kinds.run(
        [([], env) for _ in range(turns) for env in envs.values()], {"device": "cpu", "subset": n_train}, 1, 500
    )
    by = {name: runs[i :: len(envs)] for i, name in enumerate(envs)}
    seconds = {name: [r["train_seconds"][0] for r in rs] for name, rs in by.items()}
    kind = {name: rs[0]["kind"] for name, rs in by.items()}
    return dict(seconds=seconds, kind=kind, portable_over_unpinned=min(seconds["portable"]) / min(seconds["unpinned"]))


def ratios(reference, s7, engine, step_only_seconds_per_epoch) -> dict:
    """Reference / s7 time to >= 99.4%; where the reference never got there, its whole run / s7's time, a lower
    bound (`time_to_target_at_least`)."""
    both = s7["seconds_to_target"] and reference["seconds_to_target"]
    at_least = s7["seconds_to_target"] and not reference["seconds_to_target"] and reference["epochs"] > 1
    return dict(
        time_to_target=reference["seconds_to_target"] / s7["seconds_to_target"] if both else None,
        time_to_target_at_least=reference["wall_seconds"] / s7["seconds_to_target"] if at_least else None,
        same_model_throughput=engine["images_per_second"] / reference["images_per_second"],
        same_model_ceiling=reference["seconds_per_epoch"] / step_only_seconds_per_epoch,
        s7_vs_reference_throughput=s7["images_per_second"] / reference["images_per_second"],
    )


def markdown(result) -> str:
    m, r, n, s7 = result["machine"], result["ratios"], result["numerics"], result["runs"][1]
    lines = [
        f"Speed benchmark ({result['mode']}), {result['date']}: {m['cpu']}; {m['kind']}.",
        "",
        "| pipeline | model (params) | batch | epochs | s/epoch (fastest–slowest) | images/s | first epoch ≥ 99.4% "
        "| s to ≥ 99.4% | final test acc | peak memory MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        epoch = [h["train_seconds"] for h in run["history"]]  # how much the machine's speed moved during the run
        to_target = "not reached" if run["seconds_to_target"] is None else f"{run['seconds_to_target']:.0f}"
        lines.append(
            f"| {run['pipeline']} | {run['model']} ({run['params']:,}) | {run['batch_size']} | {run['epochs']} "
            f"| {run['seconds_per_epoch']:.1f} ({min(epoch):.1f}–{max(epoch):.1f}) | {run['images_per_second']:,.0f} "
            f"| {run['epochs_to_target'] or '–'} | {to_target} | {run['final_test_acc']:.2%} "
            f"| {run['peak_memory_mb']:,.0f} |"
        )
    if r["time_to_target"] is not None:
        to_target = f"{r['time_to_target']:.1f}×"
    elif r["time_to_target_at_least"] is not None:
        to_target = (f"more than {r['time_to_target_at_least']:.1f}× (the reference never reached 99.4%; its whole "
                     "run / s7's time to 99.4%)")  # fmt: skip
    else:
        to_target = "not measured"
    turns = {k: " / ".join(f"{v:.1f}" for v in n["seconds"][k]) for k in n["seconds"]}
    lines += [
        "",
        f"- time to ≥ 99.4% test accuracy, reference / s7: **{to_target}** (target ≥ 5×)",
        f"- same net, optimizer and batch size, project loader + engine vs DataLoader + PIL: "
        f"**{r['same_model_throughput']:.2f}×** images/s (target ≥ 2×); the net's training step alone, on one "
        f"fixed batch of digits, takes {result['reference_step_only_seconds_per_epoch']:.1f} s per epoch, so a loader "
        f"that cost nothing would reach {r['same_model_ceiling']:.2f}×",
        f"- s7 vs reference images/s: {r['s7_vs_reference_throughput']:.1f}×",
        f"- s7, {s7['epochs']} epochs: **{s7['wall_seconds']:.0f} s** wall, data setup and evaluation included "
        f"(target on a 2-core CPU ≤ 180 s for 15 epochs)",
        f"- the portable numerics: s7's epoch (fastest of {len(n['seconds']['portable'])} turns) takes "
        f"**{n['portable_over_unpinned']:.2f}×** the time it takes without them ({turns['portable']} s, "
        f"{n['kind']['portable']}; against {turns['unpinned']} s, {n['kind']['unpinned']})",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short epoch of each, no accuracy target")
    parser.add_argument("--batches", type=int, default=QUICK_BATCHES, help="training batches per run with --quick")
    parser.add_argument("--device", default="auto", help="auto (cuda -> mps -> cpu), cpu, cuda, mps")
    parser.add_argument("--workers", type=int, default=0, help="reference DataLoader workers (0: fastest on 2 cores)")
    parser.add_argument("--data-dir", default=None, help="MNIST root (default: data/ at the repo root)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for speed[-quick].json and .md")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.workers < 0:
        parser.error(f"--batches {args.batches} --workers {args.workers}: expected --batches >= 1, --workers >= 0")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: a file; give a folder")
    try:
        device, root = resolve_device(args.device), prepare_data(args.data_dir)
    except (ValueError, DataError) as err:
        parser.error(str(err))
    n_train = args.batches * BATCH_SIZE if args.quick else None
    reference = run_reference(root, device, 1 if args.quick else EPOCHS, n_train, args.workers)
    s7 = run_engine(root, device, "s7", 1 if args.quick else None, n_train)
    engine = run_engine(root, device, "reference", 1, n_train)
    step_only = reference_step_seconds_per_epoch(root, device, reference["train_images"], 20 if args.quick else 100)
    result = dict(
        mode="quick" if args.quick else "full",
        date=time.strftime("%Y-%m-%d"),
        machine=dict(cpu=numerics.cpu_name(), kind=machine_kind(device)),
        runs=[reference, s7, engine],
        ratios=ratios(reference, s7, engine, step_only),
        reference_step_only_seconds_per_epoch=step_only,
        numerics=numerics_cost(n_train, turns=1 if args.quick else 2),
    )
    name = "speed-quick" if args.quick else "speed"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{name}.json", result)
    atomic_write(args.out / f"{name}.md", lambda p: p.write_text(markdown(result)))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
