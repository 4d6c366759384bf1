"""Speed benchmark: the course's reference recipe and this project's s7 pipeline, side by side in one process.

    python -m benchmarks.speed            # full run, what the README quotes (about 15 min on 2 CPU cores)
    python -m benchmarks.speed --quick    # 200 batches of each, no accuracy target (about 1 min)

Three runs, same process, same data, seed 1:
  1. reference: `benchmarks/reference.py` exactly as the course writes it (DataLoader + PIL, plain loop);
  2. project:   `s7` with its registered recipe through `utils` (the path 03_training.ipynb takes);
  3. engine:    the *reference* net, optimizer and batch size through the project's loader and engine, to
                separate pipeline gains from model gains;
then the reference net's training step alone on one fixed batch of digits: the epoch time of a loader that cost nothing,
so the most that any loader and engine could gain over the reference with that net; then what the portable numerics
cost: s7's first epoch in new processes with and without them (utils/numerics.py), taken in turns.
Prints a Markdown table and writes it with the raw numbers to benchmarks/results/speed[-quick].{md,json}.
"""

import math
import platform
import resource
import time
from pathlib import Path

from utils import kinds, numerics
from utils.config import ArgumentParser
from utils.data import Augment, make_loaders
from utils.datafiles import DataError, prepare_data
from utils.engine import evaluate, fit, machine_kind, make_optimizer, resolve_device, seed_everything
from utils.files import atomic_write, write_json
from utils.models import MODELS, Normalize, count_params, get_model, recipe

import torch
from torch import nn

from benchmarks.reference import (
    BATCH_SIZE,
    EPOCHS,
    ROTATION,
    reference_loaders,
    reference_net,
    reference_optimizer,
    reference_train_epoch,
)
from benchmarks.step_options import time_steps

TARGET, SEED, QUICK_BATCHES = 0.994, 1, 200
RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_WARMUP = 0.2  # the engine always runs OneCycle: the reference net through it warms up over 20% of its steps


def reset_peak_memory(device) -> None:
    """Start a new peak-memory window: CUDA allocator stats, or the process's peak RSS (Linux)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM
    except OSError:
        pass


def peak_memory_mb(device) -> float:
    """Peak CUDA memory allocated, or peak RSS of this process (DataLoader workers not included)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status")
    if status.exists():
        return next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM")) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summarize(pipeline, model, n_train, batch_size, setup_seconds, history, device) -> dict:
    """Per-run figures: speed, time to the first epoch at >= 99.4% test accuracy, final accuracy, memory."""
    acc = [h["test_acc"] for h in history]
    hit = next((i for i, a in enumerate(acc) if a >= TARGET), None)
    train_seconds = sum(h["train_seconds"] for h in history)
    return dict(
        pipeline=pipeline,
        model=model,
        params=None,
        batch_size=batch_size,
        train_images=n_train,
        epochs=len(history),
        seconds_per_epoch=train_seconds / len(history),
        images_per_second=n_train * len(history) / train_seconds,
        epochs_to_target=None if hit is None else hit + 1,
        seconds_to_target=None if hit is None else setup_seconds + sum(h["seconds"] for h in history[: hit + 1]),
        final_test_acc=acc[-1],
        wall_seconds=setup_seconds + sum(h["seconds"] for h in history),
        peak_memory_mb=peak_memory_mb(device),
        history=history,
    )


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_reference(root, device, epochs, n_train, workers) -> dict:
    """The reference recipe: DataLoader + PIL transforms, the plain loop, evaluation after each epoch."""
    seed_everything(SEED)
    reset_peak_memory(device)
    start = time.perf_counter()
    train, test = reference_loaders(root, workers=workers, pin_memory=device.type == "cuda", n_train=n_train)
    model = reference_net().to(device)
    optimizer = reference_optimizer(model)
    setup = time.perf_counter() - start
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        reference_train_epoch(model, train, optimizer, device, desc=f"reference {epoch}/{epochs}")
        sync(device)
        train_seconds = time.perf_counter() - start
        test_loss, test_acc = evaluate(model, test)
        history.append(
            dict(
                epoch=epoch,
                test_loss=test_loss,
                test_acc=test_acc,
                train_seconds=train_seconds,
                seconds=time.perf_counter() - start,
            )
        )
        print(f"reference {epoch}/{epochs}: test accuracy {test_acc:.2%} ({history[-1]['seconds']:.1f} s)", flush=True)
    row = summarize(
        f"reference: DataLoader + PIL, plain loop, {workers} workers",
        "reference",
        len(train.dataset),
        BATCH_SIZE,
        setup,
        history,
        device,
    )
    return {**row, "params": count_params(model)}


def run_engine(root, device, build, optimizer, batch_size, augment, epochs, n_train, pipeline, model_name) -> dict:
    """A model through the project's path: tensor loader on the device, batched augmentation, `fit`."""
    seed_everything(SEED)
    reset_peak_memory(device)
    start = time.perf_counter()
    train, test = make_loaders(root, batch_size, device, augment, SEED, subset=n_train)
    model = build().to(device)
    opt = optimizer(model)
    setup = time.perf_counter() - start
    registered = recipe(model_name) if model_name in MODELS else {"warmup": REFERENCE_WARMUP}
    options = {k: registered[k] for k in ("label_smoothing", "ema") if k in registered}
    history = fit(model, opt, train, test, epochs=epochs, warmup=registered["warmup"], **options)
    row = summarize(pipeline, model_name, len(train.labels), batch_size, setup, history, device)
    return {**row, "params": count_params(model)}


def run_s7(root, device, epochs, n_train) -> dict:
    r = recipe("s7")
    return run_engine(
        root,
        device,
        lambda: get_model("s7"),
        lambda m: make_optimizer(m, r["optimizer"], r["lr"]),
        r["batch_size"],
        Augment(r["rotation"], r["translate"], erase=r["erase"]),
        epochs or r["epochs"],
        n_train,
        "project: s7 recipe, tensor loader + engine",
        "s7",
    )


def run_reference_net_on_engine(root, device, n_train) -> dict:
    """Same net, optimizer, batch size and rotation as the reference; only the loader and engine differ."""
    return run_engine(
        root,
        device,
        lambda: nn.Sequential(Normalize(), reference_net()),
        reference_optimizer,
        BATCH_SIZE,
        Augment(rotation=ROTATION, translate=0.0, scale=(1.0, 1.0)),
        1,
        n_train,
        "reference net and optimizer, tensor loader + engine",
        "reference",
    )


def reference_step_seconds_per_epoch(root, device, n_train, steps) -> float:
    """The reference net's forward + backward + SGD step alone, repeated on one fixed batch of the reference loader
    (real digits: random pixels make a step slower), times the steps in an epoch."""
    seed_everything(SEED)
    x, y = next(iter(reference_loaders(root, n_train=BATCH_SIZE)[0]))
    return time_steps(reference_net().to(device), x.to(device), y.to(device), steps) * math.ceil(n_train / BATCH_SIZE)


def numerics_cost(n_train, turns=2) -> dict:
    """s7's recipe, its first epoch's training seconds in new processes with the portable numerics and without
    (`PORTABLE_NUMERICS=0`: this CPU's own best kernels), taken in turns so that the machine's drift hits both."""
    params = {"device": "cpu", "subset": n_train}
    seconds, kind = {"portable": [], "unpinned": []}, {}
    for _ in range(turns):
        for name, env in (("portable", {}), ("unpinned", {numerics.SWITCH: "0"})):
            result = kinds.run([], params, 1, 500, env)  # scored on 500 test digits: the epoch is what is timed
            seconds[name].append(result["train_seconds"][0])
            kind[name] = result["kind"]
    ratio = min(seconds["portable"]) / min(seconds["unpinned"])
    return dict(seconds=seconds, kind=kind, portable_over_unpinned=ratio)


def ratios(reference, s7, engine, step_only_seconds_per_epoch) -> dict:
    """Reference / s7 time to >= 99.4%; where the reference never got there, its whole run / s7's time, a lower
    bound (`time_to_target_at_least`)."""
    to_target = at_least = None
    if s7["seconds_to_target"] and reference["seconds_to_target"]:
        to_target = reference["seconds_to_target"] / s7["seconds_to_target"]
    elif s7["seconds_to_target"] and reference["epochs"] > 1:
        at_least = reference["wall_seconds"] / s7["seconds_to_target"]
    return dict(
        time_to_target=to_target,
        time_to_target_at_least=at_least,
        same_model_throughput=engine["images_per_second"] / reference["images_per_second"],
        same_model_ceiling=reference["seconds_per_epoch"] / step_only_seconds_per_epoch,
        s7_vs_reference_throughput=s7["images_per_second"] / reference["images_per_second"],
    )


def machine(device) -> dict:
    """The CPU's model name, and what fixes the numbers: device, instruction set, threads, torch."""
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    return dict(cpu=cpu, kind=machine_kind(device))


def markdown(result) -> str:
    m, r, n = result["machine"], result["ratios"], result["numerics"]
    lines = [
        f"Speed benchmark ({result['mode']}), {result['date']}: {m['cpu']}; {m['kind']}.",
        "",
        "| pipeline | model (params) | batch | epochs | s/epoch (fastest–slowest) | images/s | first epoch ≥ 99.4% "
        "| s to ≥ 99.4% | final test acc | peak memory MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        lines.append(
            f"| {run['pipeline']} | {run['model']} ({run['params']:,}) | {run['batch_size']} | {run['epochs']} "
            f"| {run['seconds_per_epoch']:.1f} ({_epoch_range(run['history'])}) | {run['images_per_second']:,.0f} "
            f"| {run['epochs_to_target'] or '–'} "
            f"| {_num(run['seconds_to_target'], '.0f')} | {run['final_test_acc']:.2%} | {run['peak_memory_mb']:,.0f} |"
        )
    s7 = result["runs"][1]
    lines += [
        "",
        f"- time to ≥ 99.4% test accuracy, reference / s7: **{_time_to_target(r)}** (target ≥ 5×)",
        f"- same net, optimizer and batch size, project loader + engine vs DataLoader + PIL: "
        f"**{r['same_model_throughput']:.2f}×** images/s (target ≥ 2×); the net's training step alone, on one "
        f"fixed batch of digits, takes {result['reference_step_only_seconds_per_epoch']:.1f} s per epoch, so a loader "
        f"that cost nothing would reach {r['same_model_ceiling']:.2f}×",
        f"- s7 vs reference images/s: {r['s7_vs_reference_throughput']:.1f}×",
        f"- s7, {s7['epochs']} epochs: **{s7['wall_seconds']:.0f} s** wall, data setup and evaluation included "
        f"(target on a 2-core CPU ≤ 180 s for 15 epochs)",
        f"- the portable numerics: s7's epoch (fastest of {len(n['seconds']['portable'])} turns) takes "
        f"**{n['portable_over_unpinned']:.2f}×** the time it takes without them "
        f"({_seconds(n['seconds']['portable'])} s, {n['kind']['portable']}; against "
        f"{_seconds(n['seconds']['unpinned'])} s, {n['kind']['unpinned']})",
    ]
    return "\n".join(lines) + "\n"


def _time_to_target(r) -> str:
    if r["time_to_target"] is not None:
        return f"{r['time_to_target']:.1f}×"
    if r.get("time_to_target_at_least") is not None:
        return (
            f"more than {r['time_to_target_at_least']:.1f}× (the reference never reached 99.4%; "
            "its whole run / s7's time to 99.4%)"
        )
    return "not measured"


def _seconds(values) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def _epoch_range(history) -> str:
    """The fastest and slowest epoch's training seconds: how much the machine's speed moved during the run."""
    seconds = [h["train_seconds"] for h in history]
    return f"{min(seconds):.1f}–{max(seconds):.1f}"


def _num(value, fmt, suffix="") -> str:
    return "not reached" if value is None else f"{value:{fmt}}{suffix}"


def main(argv=None) -> dict:
    parser = ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short epoch of each, no accuracy target")
    parser.add_argument("--batches", type=int, default=QUICK_BATCHES, help="training batches per run with --quick")
    parser.add_argument("--device", default="auto", help="auto (cuda -> mps -> cpu), cpu, cuda, mps")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader workers of the reference pipeline (0 was the fastest on 2 CPU cores)",
    )
    parser.add_argument("--data-dir", default=None, help="MNIST root (default: data/ at the repo root)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for speed[-quick].json and .md")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.workers < 0:
        parser.error(f"--batches {args.batches} --workers {args.workers}: expected --batches >= 1, --workers >= 0")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: a file; give a folder")
    try:
        device = resolve_device(args.device)
        root = prepare_data(args.data_dir)
    except (ValueError, DataError) as err:
        parser.error(str(err))
    n_train = args.batches * BATCH_SIZE if args.quick else None
    reference = run_reference(root, device, 1 if args.quick else EPOCHS, n_train, args.workers)
    s7 = run_s7(root, device, 1 if args.quick else None, n_train)
    engine = run_reference_net_on_engine(root, device, n_train)
    step_only = reference_step_seconds_per_epoch(root, device, reference["train_images"], 20 if args.quick else 100)
    result = dict(
        mode="quick" if args.quick else "full",
        date=time.strftime("%Y-%m-%d"),
        machine=machine(device),
        runs=[reference, s7, engine],
        ratios=ratios(reference, s7, engine, step_only),
        reference_step_only_seconds_per_epoch=step_only,
        numerics=numerics_cost(n_train),
    )
    name = "speed-quick" if args.quick else "speed"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{name}.json", result)
    atomic_write(args.out / f"{name}.md", lambda p: p.write_text(markdown(result)))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
