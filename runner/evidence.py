"""The committed evidence run: `make notebooks` executes 03_training in place and keeps its model and its metrics
beside each other in results/. The site, `make kinds` and the tests read the run from there, as data."""

import json

from utils.datafiles import REPO_ROOT
from utils.history import epoch_line

RESULTS_DIR = REPO_ROOT / "results"
COMMITTED_ONNX = RESULTS_DIR / "03_training.onnx"  # the model: the site's draw page runs it
COMMITTED_METRICS = RESULTS_DIR / "03_training.metrics.json"  # its metrics.json: parameters, history, machine kind
WHERE_IT_RAN = ("output_dir", "checkpoint")  # paths on the machine that ran it: not kept


def committed_metrics() -> dict:
    """The committed 03 run's metrics.json."""
    return json.loads(COMMITTED_METRICS.read_text())


def committed_lines() -> list[str]:
    """The committed 03 run's epoch lines as the notebook printed them, without their seconds (the one part that
    differs between two runs of the same numbers)."""
    metrics = committed_metrics()
    return [without_seconds(epoch_line(row, metrics["epochs"])) for row in metrics["history"]]


def without_seconds(line: str) -> str:
    return line.rsplit(" | ", 1)[0]
