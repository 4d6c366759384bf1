"""One run of a sweep: 03_training executed into its own folder (in a Dask worker), how it ended, and what
`--resume` keeps of it."""

import json
import os
from pathlib import Path

from utils.history import LAST3_MIN
from utils.numerics import THREAD_VARIABLES

import nbformat

from .execute import NOTEBOOK_DIR, execute
from .grid import SweepError

NOTEBOOK = NOTEBOOK_DIR / "03_training.ipynb"


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
    # inherits it trains much slower (sweeps/README.md has the figures)
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
        row.update(
            scored_on=metrics["split"],
            best_acc=metrics["best_acc"],
            last3_min=LAST3_MIN(metrics["history"]),
            final_acc=metrics["final_acc"],
            seconds=metrics["seconds"],
            history=metrics["history"],
        )
    return row
