"""Other machine kinds, simulated on this one: the committed 03_training run (s7's recipe, seed 1) trained again
with 1 thread and with torch's AVX2 kernels (ATEN_CPU_CAPABILITY=avx2), as CI on another machine would train
it. Floating-point sums then come out in another order, so the numbers differ from the committed ones; the
target must hold all the same.

    python -m utils.kinds [--out DIR]     # make kinds: about 5 minutes on a 2-core CPU -> runs/kinds-<timestamp>/
"""

import json
import os
import re
from pathlib import Path
from unittest import mock

from .config import ArgumentParser, make_output_dir
from .execute import execute, notebook_text
from .files import atomic_write
from .models import MODELS, accuracies
from .runs import THREAD_VARIABLES

KINDS = {  # name -> environment of the kernel (the thread variables as a sweep sets them)
    "1 thread": dict.fromkeys(THREAD_VARIABLES, "1"),
    "AVX2 kernels, 2 threads": {"ATEN_CPU_CAPABILITY": "avx2", **dict.fromkeys(THREAD_VARIABLES, "2")},
}


def committed_run() -> tuple[str, list[dict]]:
    """The committed 03 notebook's machine kind ("runs on" line) and history as its lines per epoch print it: the
    train and test accuracy of each epoch, to the 0.01% shown."""
    text = notebook_text("03_training")
    kind = re.search(r"^runs on (.+)$", text, re.M).group(1)
    rows = re.findall(r"^epoch \d+/\d+: train loss \S+ acc (\S+)% \| test loss \S+ acc (\S+)% \|", text, re.M)
    return kind, [{"train_acc": float(train) / 100, "test_acc": float(test) / 100} for train, test in rows]


def percents(history) -> list[float]:
    """A history's accuracy per epoch in %, to the 0.01% its lines per epoch show."""
    return [round(100 * a, 2) for a in accuracies(history)]


def row(kind: str, history) -> str:
    """One machine kind's line of the table: accuracy per epoch, the target's measure, met or missed."""
    target = MODELS["s7"].target
    accs = " ".join(f"{a:.2f}" for a in percents(history))
    outcome = "met" if target.met(history) else "**missed**"
    return f"| {kind} | {accs} | {100 * target.measure(history):.2f} | {outcome} |"


def main(argv=None) -> str:
    parser = ArgumentParser(prog="python -m utils.kinds", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="default: runs/kinds-<timestamp>/")
    args = parser.parse_args(argv)
    out = make_output_dir(args.out, prefix="kinds-")
    kind, history = committed_run()
    lines = [
        f"s7's recipe, seed 1, test accuracy per epoch (%); target: {MODELS['s7'].target.text}",
        "",
        "| machine kind | test accuracy per epoch (%) | lowest of the last 3 | target |",
        "|---|---|---:|---|",
        row(f"committed notebook: {kind}", history),
    ]
    for name, env in KINDS.items():
        folder = out / re.sub(r"\W+", "-", name).strip("-")
        print(f"{name}: training -> {folder}", flush=True)
        with mock.patch.dict(os.environ, env):
            execute("03_training", folder / "03_training.ipynb", {"output_dir": str(folder)})
        metrics = json.loads((folder / "metrics.json").read_text())
        lines.append(row(f"{name}: {metrics['machine']}", metrics["history"]))
        same = percents(metrics["history"]) == percents(history)
        print(lines[-1] + ("  (the committed numbers exactly)" if same else ""), flush=True)
    text = "\n".join(lines) + "\n"
    atomic_write(out / "kinds.md", lambda p: p.write_text(text))
    print(f"\n{text}\nkinds.md in {out}")
    return text


if __name__ == "__main__":
    main()
