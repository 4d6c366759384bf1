"""What a sweep writes when its runs are done: summary.csv/.md/.png for a grid, seeds.md/.png for a recipe over
seeds. Needs no Dask: works on the rows the runs returned."""

import csv
import io
import statistics
from pathlib import Path

from .files import atomic_write
from .models import MODELS, accuracies
from .plots import plot_seeds, plot_sweep

COLUMNS = ["run", "status", "scored_on", "best_acc", "final_acc", "last3_min", "seconds", "error"]


def write_summary(rows: list[dict], out: Path, swept: list[str]) -> None:
    """summary.csv (every parameter), summary.md (swept parameters) and summary.png (when a run finished: an empty
    chart would look broken), all in `out`."""
    params = [k for k in rows[0] if k not in COLUMNS and k != "history"]
    table = io.StringIO()
    writer = csv.DictWriter(
        table, fieldnames=["run", "status", *params, *COLUMNS[2:]], extrasaction="ignore", restval=""
    )
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "summary.csv", lambda p: p.write_text(table.getvalue()))
    atomic_write(out / "summary.md", lambda p: p.write_text(markdown_table(rows, swept)))
    finished = [r for r in rows if "history" in r]
    (out / "summary.png").unlink(missing_ok=True)  # a resumed sweep's earlier chart
    if finished:
        plot_sweep(finished, out / "summary.png")


def markdown_table(rows: list[dict], swept: list[str]) -> str:
    lines = [
        f"| run | {' | '.join(swept)} | status | scored on | best acc | final acc | lowest of last 3 | seconds |",
        "|---|" + "---|" * len(swept) + "---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        results = (
            f"{r['scored_on']} | {r['best_acc']:.2%} | {r['final_acc']:.2%} | {r['last3_min']:.2%} | {r['seconds']:.0f}"
            if "history" in r
            else "– | – | – | – | –"
        )
        status = f"{r['status']} ({r['error']})" if r["error"] else r["status"]
        lines.append(f"| {r['run']} | {' | '.join(str(r[k]) for k in swept)} | {status} | {results} |")
    return "\n".join(lines) + "\n"


def spread(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"mean {statistics.mean(values):.2f} ± {std:.2f} (std), worst {min(values):.2f}"


def seeds_report(rows: list[dict], model: str, out: Path) -> str:
    """seeds.md and seeds.png: per seed the accuracy per epoch, the target's measure and whether it holds; then
    seeds passed, mean ± std and worst of the measure and of the last epoch's accuracy. Returns the Markdown."""
    target = MODELS[model].target
    done = [r for r in rows if "history" in r]
    split = done[0]["scored_on"] if done else "test"
    lines = [
        f"{model}: {target.text}; scored on the {'validation split' if split == 'val' else 'test set'}",
        "",
        f"| seed | {split} accuracy per epoch (%) | {target.measure.__doc__} (%) | target |",
        "|---:|---|---:|---|",
    ]
    for r in rows:
        if "history" not in r:
            lines.append(f"| {r['seed']} | {r['error']} | – | **failed** |")
            continue
        per_epoch = " ".join(f"{100 * h[split + '_acc']:.2f}" for h in r["history"])
        met = "met" if target.met(r["history"]) else "**missed**"
        lines.append(f"| {r['seed']} | {per_epoch} | {100 * target.measure(r['history']):.2f} | {met} |")
    values = [100 * target.measure(r["history"]) for r in done]
    passed = sum(target.met(r["history"]) for r in done)
    if values:
        lines += [
            "",
            f"{passed}/{len(rows)} seeds meet the target; {target.measure.__doc__}: {spread(values)}, "
            f"bar {100 * target.bar:.2f}",
        ]
    if any(len(r["history"]) > 1 for r in done):  # the weights a run ends with, whatever the target measures
        final = [100 * accuracies(r["history"])[-1] for r in done]
        lines += ["", f"accuracy after the last epoch (the model saved): {spread(final)}"]
    text = "\n".join(lines) + "\n"
    atomic_write(out / "seeds.md", lambda p: p.write_text(text))
    plot_seeds(
        [r["seed"] for r in done],
        values,
        100 * target.bar,
        out / "seeds.png",
        f"{model} on the {'validation split' if split == 'val' else 'test set'}: {target.measure.__doc__}",
    )
    return text
