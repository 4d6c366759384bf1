"""The committed 03_training run on other CPUs, emulated: its first epochs trained again under Debian's qemu-user
(`qemu-x86_64 -cpu MODEL` runs this machine's Python as that CPU model would: its instruction set, its CPUID
vendor), printed beside the committed lines. With the portable numerics (`numerics`) they must match to the digit.

    python -m runner.kinds [--cpu EPYC-Milan] [--cpu Haswell] [--epochs 1]   # make kinds: 9-76 min an epoch a CPU
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from utils.config import TrainParams, make_output_dir
from utils.datafiles import REPO_ROOT
from utils.engine import build, fit, machine_kind, resolve_device
from utils.errors import UserError
from utils.files import atomic_write
from utils.history import epoch_line

from .cli import ArgumentParser
from .evidence import committed_lines, without_seconds

EMULATOR = "qemu-x86_64"
RUNNER_CPU = "EPYC-Milan"  # the generation of GitHub's hosted runners' AMD EPYC 7763, which shows no AVX-512


def emulated(cpu: str) -> list[str]:
    """The command prefix that runs a process as CPU model `cpu` (qemu-user's names: EPYC-Milan, Haswell, ...)."""
    emulator = shutil.which(EMULATOR)
    if emulator is None:
        raise UserError(f"no {EMULATOR} here: install Debian's qemu-user (`make emulator` does, as root)")
    return [emulator, "-cpu", cpu]


def train_first_epochs(params: dict, epochs_to_run: int, eval_images: int | None = None) -> dict:
    """03_training's run (`engine.build`, `fit`) with `params` over the notebook's defaults, which are the committed
    run's; stopped after `epochs_to_run` epochs, scored on the first `eval_images` of the evaluation split (None:
    all). Returns the machine kind, the epoch lines fit printed (without their seconds), a hash of the weights and
    each epoch's training seconds."""
    p = TrainParams(**params)
    device = resolve_device(p.device)
    run = build(p, device, eval_images)
    rows = fit(run, stop_after=epochs_to_run)
    weights = hashlib.sha256(b"".join(t.cpu().numpy().tobytes() for t in run.model.state_dict().values()))
    lines = [without_seconds(epoch_line(row, p.epochs)) for row in rows]
    seconds = [row["train_seconds"] for row in rows]
    return dict(kind=machine_kind(device), lines=lines, weights=weights.hexdigest(), train_seconds=seconds)


def run(children: list[tuple[list[str], dict | None]], params: dict, epochs_to_run: int, eval_images=None) -> list:
    """`train_first_epochs` in a new Python process for each (prefix, env) of `children`, started through `prefix`
    (an emulator, or [] for this CPU) with `env` added to its environment. They import at the same time (on one
    thread each: the slow part under emulation), then train one after another, each alone on the cores. A child that
    fails raises UserError with its last line; the others are killed."""
    child = json.dumps([params, epochs_to_run, eval_images])
    procs = [
        subprocess.Popen(
            [*prefix, sys.executable, "-m", "runner.kinds", "--child", child],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
        )
        for prefix, env in children
    ]
    ready = [proc.stdout.readline() == "ready\n" for proc in procs]  # each has imported, or has failed
    results = []
    for (prefix, _), proc, go in zip(children, procs, ready, strict=True):
        out, err = proc.communicate("go\n" if go else "")
        if proc.returncode != 0:
            for other in procs:
                other.kill()
                other.communicate()  # reaped, its pipes closed
            last = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            raise UserError(f"training under {' '.join(prefix) or 'this CPU'} failed: {last}")
        results.append(json.loads(out.splitlines()[-1]))
    return results


def main(argv=None) -> bool:
    parser = ArgumentParser(prog="python -m runner.kinds", description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="append", help=f"a qemu CPU model; repeatable (default: {RUNNER_CPU})")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the committed run to train again")
    parser.add_argument("--out", type=Path, help="default: runs/kinds-<timestamp>/")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # what `run` starts
    args = parser.parse_args(argv)
    if args.child:  # imported: say so, and train when `run` says go
        import torch._dynamo  # noqa: F401  (torch.optim's first use imports it: 9 s emulated, so before "ready")

        print("ready", flush=True)
        sys.stdin.readline()
        print(json.dumps(train_first_epochs(*json.loads(args.child))))
        return True
    committed = committed_lines()
    if not 1 <= args.epochs <= len(committed):
        parser.error(f"--epochs {args.epochs}: expected 1 to {len(committed)} (the committed run's epochs)")
    try:
        prefixes = {cpu: emulated(cpu) for cpu in args.cpu or [RUNNER_CPU]}  # before any folder is made
    except UserError as err:
        parser.exit(1, f"{parser.prog}: {err}\n")
    out = make_output_dir(args.out, prefix="kinds-")
    report = [f"The committed 03_training run's first {args.epochs} epoch(s), trained again on emulated CPUs", ""]
    report += ["committed:", *committed[: args.epochs]]
    print(f"training under {EMULATOR} -cpu {', '.join(prefixes)}, one after another (9-76 min an epoch, by the host)")
    try:
        results = run([(prefix, None) for prefix in prefixes.values()], {}, args.epochs)
    except UserError as err:  # the emulator or a training failed: one line
        parser.exit(1, f"{parser.prog}: {err}\n")
    same = True
    for cpu, result in zip(prefixes, results, strict=True):
        match = result["lines"] == committed[: args.epochs]
        same &= match
        report += ["", f"{cpu} ({result['kind']}): {'the committed lines' if match else 'DIFFERENT'}", *result["lines"]]
    text = "\n".join(report) + "\n"
    atomic_write(out / "kinds.md", lambda p: p.write_text(text))
    print(f"\n{text}\nkinds.md in {out}")
    return same


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
