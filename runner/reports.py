"""What a sweep writes when its runs are done: summary.csv/.md/.png for a grid, seeds.md/.png for a recipe over
seeds. Needs no Dask: works on the rows the runs returned."""

import csv
import io
import statistics
from pathlib import Path

from utils.files import atomic_write
from utils.history import SPLITS, accuracies
from utils.models import MODELS
from utils.plots import save_figure

import matplotlib.pyplot as plt

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
        f"{model}: {target.text}; scored on {SPLITS[split]}",
        "",
        f"| seed | {split} accuracy per epoch (%) | {target.measure.text} (%) | target |",
        "|---:|---|---:|---|",
    ]
    for r in rows:
        if "history" not in r:
            lines.append(f"| {r['seed']} | {r['error']} | – | **failed** |")
            continue
        per_epoch = " ".join(f"{100 * a:.2f}" for a in accuracies(r["history"]))
        met = "met" if target.met(r["history"]) else "**missed**"
        lines.append(f"| {r['seed']} | {per_epoch} | {100 * target.measure(r['history']):.2f} | {met} |")
    values = [100 * target.measure(r["history"]) for r in done]
    passed = sum(target.met(r["history"]) for r in done)
    if values:
        lines += [
            "",
            f"{passed}/{len(rows)} seeds meet the target; {target.measure.text}: {spread(values)}, "
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
        f"{model} on {SPLITS[split]}: {target.measure.text}",
    )
    return text


def plot_sweep(rows, path=None):
    """A sweep's runs: accuracy per epoch (one line per run) and each run's final accuracy (test or validation)."""
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 4), gridspec_kw=dict(width_ratios=[3, 2]), layout="constrained"
    )
    for r in rows:
        left.plot(
            [h["epoch"] for h in r["history"]],
            [100 * a for a in accuracies(r["history"])],
            marker=".",
            label=r["run"],
        )
    left.set(xlabel="epoch", ylabel="accuracy (%)", title="test (or validation) accuracy per epoch")
    left.legend(fontsize=7)
    names = [r["run"] for r in rows]
    bars = right.barh(names, [100 * r["final_acc"] for r in rows])
    right.bar_label(bars, fmt="%.2f", fontsize=8)
    right.set(xlabel="final accuracy (%)", title="final accuracy per run")
    lowest = min((100 * r["final_acc"] for r in rows), default=90)
    right.set_xlim(max(0, lowest - 1), 100)
    right.tick_params(axis="y", labelsize=7)
    for side in (left, right):
        side.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_seeds(seeds, values, bar, path=None, title=""):
    """One point per seed (a target's measure, in %) against the target's bar."""
    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    met = [v >= bar for v in values]
    ax.scatter(seeds, values, c=["tab:green" if m else "tab:red" for m in met], zorder=3)
    for s, v, above in zip(seeds, values, met, strict=True):  # the label on the side away from the target line
        ax.annotate(
            f"{v:.2f}",
            (s, v),
            textcoords="offset points",
            xytext=(0, 6 if above else -7),
            ha="center",
            va="bottom" if above else "top",
            fontsize=8,
        )
    ax.axhline(bar, color="black", linestyle="--", label=f"target {bar:.2f}%")
    ax.set(xlabel="seed", ylabel="accuracy (%)", title=title, xticks=list(seeds))
    ax.set_ylim(min([*values, bar]) - 0.1, max([*values, bar]) + 0.1)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
