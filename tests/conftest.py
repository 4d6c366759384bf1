import json
import os
import shutil
import tempfile
from pathlib import Path

from utils.datafiles import prepare_data
from utils.engine import machine_kind, resolve_device

import pytest

TRAINING_NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_training.ipynb"
OTHER_MACHINE_SANITIZER = Path(__file__).resolve().parent / "nbval_sanitize_other_machine.cfg"
NBVAL_NOTE = pytest.StashKey[str]()
RUNS = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def mnist_root():
    """The project's data/ folder with the four verified MNIST files (rebuilt offline if needed)."""
    return prepare_data()


def without_timings(history):
    """A training history without its seconds fields: what must repeat exactly between runs."""
    return [{k: v for k, v in h.items() if not k.endswith("seconds")} for h in history]


def executed_on(notebook) -> str | None:
    """The machine a committed notebook was executed on: its printed "runs on ..." line."""
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        for output in cell.get("outputs", []):
            for line in "".join(output.get("text", "")).splitlines():
                if line.startswith("runs on "):
                    return line.removeprefix("runs on ")
    return None


def pytest_configure(config):
    """Run folders of notebooks executed with their defaults (nbval's) go to a temporary folder, not the checkout.
    nbval compares the committed per-epoch numbers exactly only on the machine kind that produced them."""
    if "RUNS_DIR" not in os.environ:
        os.environ["RUNS_DIR"] = config.stash[RUNS] = tempfile.mkdtemp(prefix="mnist-test-runs-")
    if getattr(config.option, "nbval_sanitize_with", None) is None:
        return
    here, there = machine_kind(resolve_device()), executed_on(TRAINING_NOTEBOOK)
    if here == there:
        config.stash[NBVAL_NOTE] = f"nbval: the committed notebooks were executed on this machine kind ({here})"
    else:
        config.option.nbval_sanitize_with = str(OTHER_MACHINE_SANITIZER)
        config.stash[NBVAL_NOTE] = (
            f"nbval: the committed notebooks were executed on {there}, this is {here}: per-epoch losses and "
            "accuracies NOT compared (targets still checked). `make notebooks` here, then `make test`, compares all."
        )


def pytest_unconfigure(config):
    if RUNS in config.stash:
        shutil.rmtree(config.stash[RUNS], ignore_errors=True)
        del os.environ["RUNS_DIR"]


def pytest_report_header(config):
    return config.stash.get(NBVAL_NOTE, None)


def pytest_terminal_summary(terminalreporter, config):
    if NBVAL_NOTE in config.stash:
        terminalreporter.write_line(config.stash[NBVAL_NOTE], yellow=True)
