from utils import numerics

numerics.apply()  # first, before any test module loads torch: the portable CPU numerics, as every program has

import copy
import os
import shutil
import tempfile
from pathlib import Path

from utils.datafiles import prepare_data
from utils.engine import machine_kind, resolve_device

import nbformat
import pytest
from nbconvert import HTMLExporter

from runner.evidence import committed_metrics

OTHER_MACHINE_SANITIZER = Path(__file__).resolve().parent / "nbval_sanitize_other_machine.cfg"
NBVAL_NOTE = pytest.StashKey[str]()
RUNS = pytest.StashKey[str]()
EXECUTED = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def mnist_root():
    """The project's data/ folder with the four verified MNIST files (rebuilt offline if needed)."""
    return prepare_data()


def without_timings(history):
    """A training history without its seconds fields: what must repeat exactly between runs."""
    return [{k: v for k, v in h.items() if not k.endswith("seconds")} for h in history]


def pytest_addoption(parser):
    parser.addoption(
        "--keep-runs",
        metavar="DIR",
        help="run folders of notebooks executed with their defaults (nbval's 03: metrics, plots, checkpoints) go to "
        "DIR instead of a temporary folder, and the notebooks nbval executed to DIR/executed/, with their outputs "
        "and as HTML (CI keeps them: it trains once)",
    )


def pytest_configure(config):
    """Run folders of notebooks executed with their defaults (nbval's) go to --keep-runs or a temporary folder, not
    the checkout. nbval compares the committed per-epoch numbers exactly only on the machine kind that produced
    them (the committed run's metrics.json names it)."""
    config.stash[EXECUTED] = {}
    if config.getoption("keep_runs"):
        os.environ["RUNS_DIR"] = str(Path(config.getoption("keep_runs")).resolve())
    elif "RUNS_DIR" not in os.environ:
        os.environ["RUNS_DIR"] = config.stash[RUNS] = tempfile.mkdtemp(prefix="mnist-test-runs-")
    if getattr(config.option, "nbval_sanitize_with", None) is None:
        return
    here, there = machine_kind(resolve_device()), committed_metrics()["machine"]
    if here == there:
        config.stash[NBVAL_NOTE] = f"nbval: the committed notebooks were executed on this machine kind ({here})"
    else:
        config.option.nbval_sanitize_with = str(OTHER_MACHINE_SANITIZER)
        config.stash[NBVAL_NOTE] = (
            f"nbval: the committed notebooks were executed on {there}, this is {here}: per-epoch losses and "
            "accuracies NOT compared (targets still checked). `make notebooks` here, then `make test`, compares all."
        )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """nbval's cells re-execute the committed notebooks at the pinned thread count: serial, before `-m` selects."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.serial)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """What nbval's kernel printed for each cell, kept for --keep-runs."""
    try:
        return (yield)
    finally:
        if hasattr(item, "test_outputs"):
            item.config.stash[EXECUTED].setdefault(item.parent, {})[item.cell_num] = item.test_outputs


def pytest_sessionfinish(session):
    """With --keep-runs: each notebook nbval executed, with the outputs it got, as .ipynb and .html."""
    keep = session.config.getoption("keep_runs")
    if not keep:
        return
    for notebook, outputs in session.config.stash[EXECUTED].items():
        nb = copy.deepcopy(notebook.nb)
        for n, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            cell.outputs = outputs.get(n, [])
        path = Path(keep) / "executed" / notebook.path.name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        path.with_suffix(".html").write_text(HTMLExporter().from_notebook_node(nb)[0])


def pytest_unconfigure(config):
    if RUNS in config.stash:
        shutil.rmtree(config.stash[RUNS], ignore_errors=True)
        del os.environ["RUNS_DIR"]


def pytest_report_header(config):
    return config.stash.get(NBVAL_NOTE, None)


def pytest_terminal_summary(terminalreporter, config):
    if NBVAL_NOTE in config.stash:
        terminalreporter.write_line(config.stash[NBVAL_NOTE], yellow=True)
