"""Recipes as papermill arguments, and the README's results table from runs' metrics.json files.

    python -m utils.report args s5        # -> -p model s5 -p epochs 1 ...
    python -m utils.report table runs/X   # Markdown table of every metrics.json under runs/X
"""

import json
import sys
from pathlib import Path

from .models import MODELS, target_met


def papermill_args(name: str) -> str:
    """`-p key value` pairs that run 03_training.ipynb with the model's registered recipe."""
    return " ".join(f"-p {k} {v}" for k, v in {"model": name, **MODELS[name].recipe}.items())


def results_table(root) -> str:
    """One Markdown row per metrics.json under `root`: parameters, epochs, test accuracy per epoch, target."""
    rows = [
        "| model | seed | params | epochs | test accuracy per epoch (%) | best | final | train acc | target "
        "| seconds |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for path in sorted(Path(root).rglob("metrics.json")):
        m = json.loads(path.read_text())
        per_epoch = " ".join(f"{100 * h['test_acc']:.2f}" for h in m["history"])
        met = "yes" if target_met(m["model"], m["history"]) else "**no**"
        rows.append(
            f"| {m['model']} | {m['seed']} | {m['params']:,} | {m['epochs']} | {per_epoch} "
            f"| {100 * m['best_test_acc']:.2f} | {100 * m['final_test_acc']:.2f} "
            f"| {100 * m['history'][-1]['train_acc']:.2f} "
            f"| {met}: {MODELS[m['model']].target.text} | {m['seconds']:.0f} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    command, arg = sys.argv[1:3]
    print(papermill_args(arg) if command == "args" else results_table(arg))
