"""Papermill sweeps: 03_training.ipynb once per combination of a parameter grid, then one summary.

    python -m utils.sweep sweeps/example.yaml [--jobs 2] [--out runs/sweep-<timestamp>]
    python -m utils.sweep --recipe s7 --seeds 10 [--validation]   # a model's recipe on seeds 1..10


The grid file (YAML or JSON) maps notebook parameters to a value (shared by every run) or a list of values
(swept). Each run gets its own folder with its executed notebook, metrics.json, PNGs and checkpoints; a run
that fails is recorded with its error and the others go on. Then summary.csv, summary.md and summary.png;
a `--recipe` run also writes seeds.md and seeds.png: the model's target measure per seed against its bar.
"""

import argparse
import contextlib
import csv
import io
import itertools
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import papermill as pm
import yaml

from .data import RAW_MD5, REPO_ROOT, DataError, prepare_data
from .files import atomic_write
from .models import MODELS, list_models
from .plots import plot_seeds, plot_sweep

NOTEBOOK = REPO_ROOT / "notebooks" / "03_training.ipynb"
COLUMNS = ["run", "status", "scored_on", "best_acc", "final_acc", "seconds", "error"]


def expand_grid(grid: dict) -> list[dict]:
    """Every combination of the list-valued entries, each with the scalar entries added."""
    values = [v if isinstance(v, list) else [v] for v in grid.values()]
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]


def run_name(params: dict, swept: list[str]) -> str:
    return "-".join(f"{k}={params[k]}" for k in swept) or "run"


def run_one(folder: Path, params: dict) -> dict:
    """Execute the notebook with `params` into `folder`; returns one summary row, failed or not."""
    folder.mkdir(parents=True, exist_ok=True)
    row = dict(run=folder.name, status="ok", error="", **params)
    try:
        pm.execute_notebook(NOTEBOOK, folder / NOTEBOOK.name, parameters={**params, "output_dir": str(folder)},
                            progress_bar=False, cwd=str(NOTEBOOK.parent), log_output=False)
    except Exception as err:  # a failed run is a result: record it and let the others go on
        evalue = getattr(err, "evalue", None) or str(err)
        row.update(status="failed", error=f"{getattr(err, 'ename', type(err).__name__)}: {evalue}".splitlines()[0])
    metrics_file = folder / "metrics.json"  # also there when only the final target check failed
    if metrics_file.exists():
        metrics = json.loads(metrics_file.read_text())
        split = "val" if "best_val_acc" in metrics else "test"
        row.update(scored_on=split, best_acc=metrics[f"best_{split}_acc"], final_acc=metrics[f"final_{split}_acc"],
                   seconds=metrics["seconds"], history=metrics["history"])
    print(f"{row['run']}: {row['status']} {row['error']}".rstrip(), flush=True)
    return row


def run_sweep(grid: dict, out: Path, jobs: int = 1) -> list[dict]:
    """All runs of `grid` under `out`, `jobs` at a time (each kernel gets cores / jobs threads)."""
    runs = expand_grid(grid)
    swept = [k for k, v in grid.items() if isinstance(v, list) and len(v) > 1]
    for dataset, data_dir in {(r.get("dataset", "mnist"), r.get("data_dir")) for r in runs}:
        if dataset in RAW_MD5:  # fetched once here, not by parallel runs at the same time
            with contextlib.suppress(DataError):  # a data problem shows in the runs' own errors
                prepare_data(data_dir, dataset)
    threads = str(max(1, (os.cpu_count() or 1) // jobs))  # read by each new kernel; restored afterwards
    with mock.patch.dict(os.environ, OMP_NUM_THREADS=threads), ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(lambda p: run_one(out / run_name(p, swept), p), runs))
    write_summary(rows, out, swept)
    return rows


def write_summary(rows: list[dict], out: Path, swept: list[str]) -> None:
    """summary.csv (every parameter), summary.md (swept parameters) and summary.png, all in `out`."""
    params = [k for k in rows[0] if k not in COLUMNS and k != "history"]
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=["run", "status", *params, *COLUMNS[2:]], extrasaction="ignore",
                            restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "summary.csv", lambda p: p.write_text(table.getvalue()))
    atomic_write(out / "summary.md", lambda p: p.write_text(markdown_table(rows, swept)))
    plot_sweep([r for r in rows if "history" in r], out / "summary.png")


def markdown_table(rows: list[dict], swept: list[str]) -> str:
    lines = [f"| run | {' | '.join(swept)} | status | scored on | best acc | final acc | seconds |",
             "|---|" + "---|" * len(swept) + "---|---|---:|---:|---:|"]
    for r in rows:
        results = (f"{r['scored_on']} | {r['best_acc']:.2%} | {r['final_acc']:.2%} | {r['seconds']:.0f}"
                   if "history" in r else "– | – | – | –")
        status = f"{r['status']} ({r['error']})" if r["error"] else r["status"]
        lines.append(f"| {r['run']} | {' | '.join(str(r[k]) for k in swept)} | {status} | {results} |")
    return "\n".join(lines) + "\n"


def seeds_report(rows: list[dict], model: str, out: Path) -> str:
    """seeds.md and seeds.png: per seed the accuracy per epoch, the target's measure and whether it holds; then
    seeds passed, mean ± std and worst of the measure. Returns the Markdown."""
    target = MODELS[model].target
    done = [r for r in rows if "history" in r]
    split = done[0]["scored_on"] if done else "test"
    lines = [f"{model}: {target.text}; scored on the {'validation split' if split == 'val' else 'test set'}", "",
             f"| seed | {split} accuracy per epoch (%) | {target.measure.__doc__} (%) | target |",
             "|---:|---|---:|---|"]
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
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)) ** 0.5
        lines += ["", f"{passed}/{len(rows)} seeds meet the target; {target.measure.__doc__}: mean {mean:.2f} ± "
                      f"{std:.2f} (std), worst {min(values):.2f}, bar {100 * target.bar:.2f}"]
    text = "\n".join(lines) + "\n"
    atomic_write(out / "seeds.md", lambda p: p.write_text(text))
    plot_seeds([r["seed"] for r in done], values, 100 * target.bar, out / "seeds.png",
               f"{model} on the {'validation split' if split == 'val' else 'test set'}: {target.measure.__doc__}")
    return text


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path, nargs="?", help="YAML or JSON file: parameter -> value or list of values")
    parser.add_argument("--recipe", choices=list_models(), help="instead of a grid: this model's registered recipe")
    parser.add_argument("--seeds", type=int, default=10, help="with --recipe: seeds 1..N (default 10)")
    parser.add_argument("--validation", action="store_true", help="with --recipe: score on the validation split")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/sweep-<timestamp>/")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected an integer >= 1")
    if (args.grid is None) == (args.recipe is None):
        parser.error("give a grid file or --recipe MODEL (not both)")
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: expected an integer >= 1")
    if args.recipe:
        grid = {"model": args.recipe, **MODELS[args.recipe].recipe, "validation": args.validation,
                "seed": list(range(1, args.seeds + 1))}
    else:
        try:
            grid = yaml.safe_load(args.grid.read_text())
        except (OSError, yaml.YAMLError) as err:
            parser.error(f"{args.grid}: cannot be read as YAML or JSON ({str(err).splitlines()[0]}); "
                         "fix the file or give another one")
    if not isinstance(grid, dict) or not grid:
        parser.error(f"{args.grid}: expected a mapping of notebook parameters to values or lists of values")
    parameters = pm.inspect_notebook(NOTEBOOK)
    unknown = sorted((set(grid) - set(parameters)) | ({"output_dir"} & set(grid)))
    if unknown:
        parser.error(f"{args.grid}: {', '.join(unknown)} not a parameter of {NOTEBOOK.name} "
                     f"(output_dir is set per run); parameters: {', '.join(parameters)}")
    name = f"seeds-{args.recipe}{'-val' if args.validation else ''}" if args.recipe else "sweep"
    out = args.out or REPO_ROOT / "runs" / time.strftime(f"{name}-%Y%m%d-%H%M%S")
    rows = run_sweep(grid, out, args.jobs)
    print((out / "summary.md").read_text() + f"\nsummary.csv, summary.md, summary.png in {out}")
    if args.recipe:
        print("\n" + seeds_report(rows, args.recipe, out) + f"seeds.md, seeds.png in {out}")
    return rows


if __name__ == "__main__":
    main()
