"""Papermill sweeps on Dask: 03_training.ipynb once per combination of a parameter grid, then one summary.

    python -m runner.sweep sweeps/example.yaml [--jobs 2] [--out runs/sweep-<timestamp>]
    python -m runner.sweep --recipe s7 --seeds 10 [--validation]   # a model's recipe on seeds 1..10
    python -m runner.sweep --recipe all --seeds 1                    # every model's recipe once (make models)
    python -m runner.sweep ... --resume runs/sweep-<timestamp>      # continue an interrupted sweep
    python -m runner.sweep ... --scheduler tcp://HOST:8786          # on a Dask cluster (sweeps/README.md)


The grid file (YAML or JSON) maps notebook parameters to a value (shared by every run) or a list of values
(swept). Each run gets its own folder with its executed notebook, metrics.json, PNGs and checkpoints; a run
that fails is recorded with its error and the others go on. Then summary.csv, summary.md and summary.png;
a `--recipe` run also writes seeds.md and seeds.png: the model's target measure per seed against its bar.
"""

import contextlib
import logging
import os
from pathlib import Path

from utils.config import make_output_dir
from utils.datafiles import RAW_MD5, DataError, prepare_data
from utils.models import list_models, recipe, recipe_file

from dask.distributed import Client, KilledWorker, LocalCluster, as_completed

from .cli import ArgumentParser, environment
from .grid import SweepError, check_grid, read_grid, run_name, swept
from .reports import seeds_report, write_summary
from .runs import check_resumable, first_line, run_one, with_metrics


@contextlib.contextmanager
def dask_client(jobs: int, scheduler: str | None, threads: int = 1, resources: dict | None = None):
    """A client of the Dask cluster at `scheduler`, or of a LocalCluster of `jobs` worker processes on this machine,
    each with `threads` threads and `resources` (loopback only, no dashboard)."""
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
        environment(),  # the nannies set OMP_NUM_THREADS=1 and more here, for their workers: undone after
        LocalCluster(
            n_workers=jobs,
            threads_per_worker=threads,
            resources=resources,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,  # shutdown races log tracebacks (a last heartbeat to a closed scheduler)
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_sweep(
    grid: dict,
    out: Path,
    jobs: int = 1,
    resume: bool = False,
    scheduler: str | None = None,
    threads: int | None = None,
    source: str = "grid",
) -> list[dict]:
    """All runs of `grid` under `out` as Dask tasks: on a LocalCluster of `jobs` workers, or on the cluster at
    `scheduler`. Each run's kernel gets `threads` threads (default: cores / jobs here; on a cluster, the
    workers' OMP_NUM_THREADS). A run whose worker dies is retried on another worker (Dask's allowed-failures,
    3 by default), then recorded as failed. With `resume`, runs that ran to their end in `out` before
    (target met or missed) are kept. A grid that cannot work (`grid.check_grid`; `source` names it) raises
    SweepError before anything runs."""
    runs = check_grid(grid, source)
    out = Path(out).resolve()  # the kernels run in notebooks/: a relative output_dir would land there
    for dataset, data_dir in {(r.get("dataset", "mnist"), r.get("data_dir")) for r in runs}:
        if dataset in RAW_MD5:  # fetched once here, not by parallel runs at the same time
            with contextlib.suppress(DataError):  # a data problem shows in the runs' own errors
                prepare_data(data_dir, dataset)
    if threads is None and not scheduler:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    folders = [out / run_name(p, swept(grid)) for p in runs]
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
    write_summary(rows, out, swept(grid))
    return rows


def main(argv=None) -> list[dict]:
    parser = ArgumentParser(prog="python -m runner.sweep", description=__doc__.splitlines()[0])
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
    if args.resume and not args.resume.is_dir():
        parser.error(f"--resume {args.resume}: no such folder; give the folder of the sweep to continue")
    if args.resume and args.out:
        parser.error("--resume DIR continues in DIR; leave out --out")
    name = ("sweep" if not args.recipe else "models" if len(models) > 1 else f"seeds-{models[0]}") + (
        "-val" if args.validation else ""
    )
    try:
        if not args.recipe:
            grid = read_grid(args.grid)
            check_grid(grid, args.grid)  # before a folder is made
            out = args.resume or args.out or make_output_dir(prefix=f"{name}-")
            rows = run_sweep(grid, out, args.jobs, args.resume is not None, args.scheduler, args.threads, args.grid)
            written = [name for name in ("summary.csv", "summary.md", "summary.png") if (out / name).exists()]
            print((out / "summary.md").read_text() + f"\n{', '.join(written)} in {out}")
            return rows
        for model, model_grid in grids.items():
            check_grid(model_grid, recipe_file(model))
        out = args.resume or args.out or make_output_dir(prefix=f"{name}-")
        rows = []
        for model, model_grid in grids.items():
            folder = out / model if len(grids) > 1 else out
            resume = args.resume is not None
            rows += run_sweep(model_grid, folder, args.jobs, resume, args.scheduler, args.threads, recipe_file(model))
            print("\n" + seeds_report(rows[-args.seeds :], model, folder) + f"seeds.md, seeds.png in {folder}")
        return rows
    except SweepError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")


if __name__ == "__main__":
    main()
