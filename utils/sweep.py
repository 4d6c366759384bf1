"""Papermill sweeps on Dask: 03_training.ipynb once per combination of a parameter grid, then one summary.

    python -m utils.sweep sweeps/example.yaml [--jobs 2] [--out runs/sweep-<timestamp>]
    python -m utils.sweep --recipe s7 --seeds 10 [--validation]   # a model's recipe on seeds 1..10
    python -m utils.sweep --recipe all --seeds 1                    # every model's recipe once (make models)
    python -m utils.sweep ... --resume runs/sweep-<timestamp>      # continue an interrupted sweep
    python -m utils.sweep ... --scheduler tcp://HOST:8786          # on a Dask cluster (sweeps/README.md)


The grid file (YAML or JSON) maps notebook parameters to a value (shared by every run) or a list of values
(swept). Each run gets its own folder with its executed notebook, metrics.json, PNGs and checkpoints; a run
that fails is recorded with its error and the others go on. Then summary.csv, summary.md and summary.png;
a `--recipe` run also writes seeds.md and seeds.png: the model's target measure per seed against its bar.
"""

import contextlib
import csv
import io
import itertools
import json
import logging
import os
import statistics
import time
from pathlib import Path
from unittest import mock

import nbformat
import yaml
from dask.distributed import Client, KilledWorker, LocalCluster, as_completed

from .config import PARAMETERS, ArgumentParser, runs_dir
from .datafiles import RAW_MD5, DataError, prepare_data
from .execute import NOTEBOOK_DIR, execute
from .files import atomic_write
from .models import MODELS, accuracies, eval_split, last3_min, list_models, recipe
from .plots import plot_seeds, plot_sweep


class SweepError(ValueError):
    """A sweep cannot go on as asked (e.g. --resume with another grid)."""


NOTEBOOK = NOTEBOOK_DIR / "03_training.ipynb"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
COLUMNS = ["run", "status", "scored_on", "best_acc", "final_acc", "last3_min", "seconds", "error"]


def expand_grid(grid: dict) -> list[dict]:
    """Every combination of the list-valued entries, each with the scalar entries added."""
    values = [v if isinstance(v, list) else [v] for v in grid.values()]
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]


def run_name(params: dict, swept: list[str]) -> str:
    return "-".join(f"{k}={params[k]}" for k in swept) or "run"


def run_one(folder: Path, params: dict, resume: bool = False, threads: int | None = None) -> dict:
    """Execute the notebook with `params` into `folder` (with `resume`, keep a run that ran to its end there before);
    returns one summary row, failed or not. Runs in a Dask worker; `threads`: OMP_NUM_THREADS of its kernel
    (None: the worker's own setting)."""
    notebook = folder / NOTEBOOK.name
    if resume and (earlier := outcome(notebook)) is not None:
        row = dict(run=folder.name, **params, status="failed" if earlier else "ok", error=earlier, kept=True)
        return with_metrics(row, folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.json", NOTEBOOK.name, f"{NOTEBOOK.stem}.html"):  # an earlier attempt's files
        (folder / stale).unlink(missing_ok=True)
    if threads is not None:
        # read by the kernel papermill starts; torch takes MKL_NUM_THREADS over OMP_NUM_THREADS, and Dask's
        # nannies set both (and OpenBLAS's) to 1 in their workers
        os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    # The nannies also set MALLOC_TRIM_THRESHOLD_=65536 (freed memory goes back to the OS at once): a kernel that
    # inherits it trains 2.4x slower (an s7 epoch on 2 cores: 18.5 s instead of 7.4 s)
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    error = ""
    try:
        execute(NOTEBOOK.stem, notebook, {**params, "output_dir": str(folder)})
    except Exception as err:  # a failed run is a result: recorded, and the others go on
        error = first_line(err)
    return with_metrics(dict(run=folder.name, **params, status="failed" if error else "ok", error=error), folder)


def first_line(err: BaseException) -> str:
    return f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', None) or err}".splitlines()[0]


def read_notebook(path: Path):
    """An executed notebook, or None where there is none or it is unreadable (a run killed while writing it)."""
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return None


def outcome(notebook: Path) -> str | None:
    """How an executed notebook ended: "" when every cell ran, the error's line when every cell ran but the last
    one (tagged target-check) found the target missed: both are results to keep. None when there is no notebook,
    or it was killed midway (cells pending or running) or failed earlier: a run to do again."""
    nb = read_notebook(notebook)
    if nb is None:
        return None
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    *before, last = [cell.metadata.get("papermill", {}).get("status") for cell in cells]
    if any(s != "completed" for s in before):
        return None
    if last == "completed":
        return ""
    if last == "failed" and "target-check" in cells[-1].metadata.get("tags", []):
        return first_line(next(o for o in cells[-1].outputs if o.output_type == "error"))
    return None


def check_resumable(folder: Path, params: dict) -> None:
    """A run folder being resumed must hold a run of the same parameters (or none yet)."""
    nb = read_notebook(folder / NOTEBOOK.name)
    recorded = {} if nb is None else nb.metadata.get("papermill", {}).get("parameters", {})
    recorded = {k: v for k, v in recorded.items() if k != "output_dir"}
    if recorded and recorded != params:
        raise SweepError(
            f"{folder} was run with other parameters ({recorded}); resume a sweep with the grid "
            "it was started with, or start a new one without --resume"
        )


def with_metrics(row: dict, folder: Path) -> dict:
    """Add the run's results from its metrics.json (also there when only the final target check failed)."""
    metrics_file = folder / "metrics.json"
    if metrics_file.exists():
        metrics = json.loads(metrics_file.read_text())
        split = eval_split(metrics["history"])
        row.update(
            scored_on=split,
            best_acc=metrics[f"best_{split}_acc"],
            last3_min=last3_min(metrics["history"]),
            final_acc=metrics[f"final_{split}_acc"],
            seconds=metrics["seconds"],
            history=metrics["history"],
        )
    return row


@contextlib.contextmanager
def dask_client(jobs: int, scheduler: str | None):
    """A client of the Dask cluster at `scheduler`, or of a LocalCluster of `jobs` worker processes on this machine
    (loopback only, no dashboard)."""
    if scheduler:
        try:
            client = Client(scheduler, timeout=10)
        except OSError as err:
            raise SweepError(
                f"no Dask scheduler answers at {scheduler} ({first_line(err)}); start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS`, or leave out --scheduler"
            ) from err
        with client:
            yield client
        return
    with (
        mock.patch.dict(os.environ),  # the nannies set OMP_NUM_THREADS=1 here for their workers: restored after
        LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_sweep(
    grid: dict, out: Path, jobs: int = 1, resume: bool = False, scheduler: str | None = None, threads: int | None = None
) -> list[dict]:
    """All runs of `grid` under `out` as Dask tasks: on a LocalCluster of `jobs` workers, or on the cluster at
    `scheduler`. Each run's kernel gets `threads` threads (default: cores / jobs here; on a cluster, the
    workers' OMP_NUM_THREADS). A run whose worker dies is retried on another worker (Dask's allowed-failures,
    3 by default), then recorded as failed. With `resume`, runs that ran to their end in `out` before
    (target met or missed) are kept."""
    out = Path(out).resolve()  # the kernels run in notebooks/: a relative output_dir would land there
    runs = expand_grid(grid)
    swept = [k for k, v in grid.items() if isinstance(v, list)]
    for dataset, data_dir in {(r.get("dataset", "mnist"), r.get("data_dir")) for r in runs}:
        if dataset in RAW_MD5:  # fetched once here, not by parallel runs at the same time
            with contextlib.suppress(DataError):  # a data problem shows in the runs' own errors
                prepare_data(data_dir, dataset)
    if threads is None and not scheduler:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    folders = [out / run_name(p, swept) for p in runs]
    if resume:
        for folder, params in zip(folders, runs, strict=True):
            check_resumable(folder, params)
    rows = {}
    with dask_client(jobs, scheduler) as client:
        futures = {
            client.submit(run_one, f, p, resume, threads, key=f"run-{f}", pure=False): (f, p)
            for f, p in zip(folders, runs, strict=True)
        }
        for future in as_completed(futures):
            folder, params = futures[future]
            try:
                row = future.result()
            except KilledWorker:  # on every try: recorded, and the others go on
                error = "KilledWorker: the process running it died (killed, or out of memory); rerun it with --resume"
                row = with_metrics(dict(run=folder.name, **params, status="failed", error=error), folder)
            kept = "(kept from before)" if row.pop("kept", False) else ""
            print(" ".join(filter(None, [f"{row['run']}: {row['status']}", row["error"], kept])), flush=True)
            rows[folder] = row
    rows = [rows[f] for f in folders]
    write_summary(rows, out, swept)
    return rows


def write_summary(rows: list[dict], out: Path, swept: list[str]) -> None:
    """summary.csv (every parameter), summary.md (swept parameters) and summary.png, all in `out`."""
    params = [k for k in rows[0] if k not in COLUMNS and k != "history"]
    table = io.StringIO()
    writer = csv.DictWriter(
        table, fieldnames=["run", "status", *params, *COLUMNS[2:]], extrasaction="ignore", restval=""
    )
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "summary.csv", lambda p: p.write_text(table.getvalue()))
    atomic_write(out / "summary.md", lambda p: p.write_text(markdown_table(rows, swept)))
    plot_sweep([r for r in rows if "history" in r], out / "summary.png")


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


def main(argv=None) -> list[dict]:
    parser = ArgumentParser(prog="python -m utils.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path, nargs="?", help="YAML or JSON file: parameter -> value or list of values")
    parser.add_argument(
        "--recipe",
        nargs="+",
        choices=[*list_models(), "all"],
        metavar="MODEL",
        help=f"instead of a grid: these models' registered recipes ({', '.join(list_models())} or all)",
    )
    parser.add_argument("--seeds", type=int, default=10, help="with --recipe: seeds 1..N (default 10)")
    parser.add_argument("--validation", action="store_true", help="with --recipe: score on the validation split")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time on this machine (default 1)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask cluster (tcp://HOST:8786) instead")
    parser.add_argument(
        "--threads",
        type=int,
        help="threads per run (default: cores / jobs; on a cluster, the "
        "workers' OMP_NUM_THREADS); numbers repeat exactly only at the same thread count",
    )
    parser.add_argument("--out", type=Path, default=None, help="default: runs/sweep-<timestamp>/")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the sweep in DIR: keep its successful runs, run the rest (same grid)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected an integer >= 1")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads}: expected an integer >= 1")
    if (args.grid is None) == (args.recipe is None):
        parser.error("give a grid file or --recipe MODEL (not both)")
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: expected an integer >= 1")
    if args.recipe:
        models = list_models() if "all" in args.recipe else list(dict.fromkeys(args.recipe))
        grids = {
            m: {**recipe(m), "validation": args.validation, "seed": list(range(1, args.seeds + 1))} for m in models
        }
        grid = next(iter(grids.values()))  # every recipe sets the same parameters: checked below with the first
    else:
        try:
            grid = yaml.safe_load(args.grid.read_text())
        except (OSError, yaml.YAMLError) as err:
            parser.error(
                f"{args.grid}: cannot be read as YAML or JSON ({str(err).splitlines()[0]}); "
                "fix the file or give another one"
            )
    if not isinstance(grid, dict) or not grid:
        parser.error(f"{args.grid}: expected a mapping of notebook parameters to values or lists of values")
    unknown = sorted((set(grid) - set(PARAMETERS)) | ({"output_dir"} & set(grid)))
    if unknown:
        parser.error(
            f"{args.grid}: {', '.join(unknown)} not a parameter of {NOTEBOOK.name} "
            f"(output_dir is set per run); parameters: {', '.join(PARAMETERS)}"
        )
    if args.resume and not args.resume.is_dir():
        parser.error(f"--resume {args.resume}: no such folder; give the folder of the sweep to continue")
    if args.resume and args.out:
        parser.error("--resume DIR continues in DIR; leave out --out")
    name = ("sweep" if not args.recipe else "models" if len(models) > 1 else f"seeds-{models[0]}") + (
        "-val" if args.validation else ""
    )
    out = args.resume or args.out or runs_dir() / time.strftime(f"{name}-%Y%m%d-%H%M%S")
    try:
        if not args.recipe:
            rows = run_sweep(grid, out, args.jobs, args.resume is not None, args.scheduler, args.threads)
            print((out / "summary.md").read_text() + f"\nsummary.csv, summary.md, summary.png in {out}")
            return rows
        rows = []
        for model, model_grid in grids.items():
            folder = out / model if len(grids) > 1 else out
            rows += run_sweep(model_grid, folder, args.jobs, args.resume is not None, args.scheduler, args.threads)
            print("\n" + seeds_report(rows[-args.seeds :], model, folder) + f"seeds.md, seeds.png in {folder}")
        return rows
    except SweepError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")


if __name__ == "__main__":
    main()
