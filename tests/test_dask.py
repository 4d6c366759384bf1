"""Sweeps on a real Dask cluster on loopback: a scheduler and two worker processes started here, a worker killed
in the middle of a run; the retried run compared with the same run on a worker, uninterrupted."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from utils.checkpoints import LAST_CHECKPOINT, read_checkpoint

import pytest
from conftest import without_timings
from distributed import Client

from runner.sweep import run_sweep

pytestmark = pytest.mark.slow  # real trainings: make test runs them, make test-quick does not

DASK = str(Path(sys.executable).parent / "dask")
GRID = {"lr": [0.05, 0.1], "subset": 2000, "epochs": 3, "batch_size": 100, "device": "cpu"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def cluster(folder: Path, allowed_failures: int):
    """tcp://127.0.0.1:PORT of a scheduler with two single-threaded worker processes (each under a nanny that
    restarts it), allowing each task `allowed_failures` failed workers (Dask's default is 3); its log in `folder`."""
    address = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures)}
    log = open(folder / "dask.log", "w")  # noqa: SIM115 (closed below)
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
            env=env,
            stdout=log,
            stderr=log,
        )
    ]
    procs.append(
        subprocess.Popen(
            [DASK, "worker", address, "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
            env=env,
            stdout=log,
            stderr=log,
        )
    )
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
        log.close()


def kill_a_worker_during_training(address, folder) -> int:
    """SIGKILL the worker process running the run in `folder` once its first epoch is checkpointed; its pid."""
    with Client(address, timeout=30) as client:
        deadline = time.time() + 120
        while not (folder / "last.pt").exists():
            assert time.time() < deadline, f"no {folder / 'last.pt'} after 120 s: the run never got to be killed"
            time.sleep(0.2)
        busy = [w for w, keys in client.processing().items() if any(str(folder) in str(k) for k in keys)]
        assert busy, f"no worker is running {folder.name} after its first epoch: it ended before the kill"
        pid = client.run(os.getpid, workers=busy)[busy[0]]
    os.kill(pid, signal.SIGKILL)
    return pid


def sweep_with_a_kill(grid, out, allowed_failures, victim):
    """The sweep on a new cluster, while another thread kills the worker running the run `victim`; the killer's
    failure fails the test."""
    out.mkdir(parents=True)
    with cluster(out, allowed_failures) as address, ThreadPoolExecutor(1) as pool:
        killer = pool.submit(kill_a_worker_during_training, address, out / victim)
        rows = run_sweep(grid, out, scheduler=address, threads=1)
        pid = killer.result()  # raises here what went wrong in the killer's thread
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker is gone: the run really lost its process
    return rows


@pytest.fixture(scope="module")
def no_retries(tmp_path_factory, mnist_root):
    """GRID's sweep on a cluster that allows no failure, the worker running lr=0.05 killed: its folder and rows."""
    out = tmp_path_factory.mktemp("no_retries") / "sweep"
    return out, sweep_with_a_kill(GRID, out, 0, "lr=0.05")


@pytest.mark.xdist_group("dask")
def test_a_run_whose_worker_dies_is_recorded_as_failed_and_the_others_finish(no_retries):
    out, rows = no_retries
    assert [(r["run"], r["status"]) for r in rows] == [("lr=0.05", "failed"), ("lr=0.1", "ok")]
    assert rows[0]["error"] == (
        "KilledWorker: the process running it died (killed, or out of memory); rerun it with --resume"
    )
    assert "| lr=0.05 | 0.05 | failed (KilledWorker: " in (out / "summary.md").read_text()


@pytest.mark.xdist_group("dask")
def test_a_killed_run_is_retried_on_the_other_worker_and_gives_the_uninterrupted_history(tmp_path, no_retries):
    """Compared with lr=0.1 of the sweep above: the same run on a Dask worker, run to its end."""
    rows = sweep_with_a_kill({**GRID, "lr": [0.1]}, tmp_path / "dask", 3, "lr=0.1")
    assert [(r["run"], r["status"]) for r in rows] == [("lr=0.1", "ok")]
    _, (_, uninterrupted) = no_retries
    assert uninterrupted["status"] == "ok"
    assert without_timings(rows[0]["history"]) == without_timings(uninterrupted["history"])
    retried = tmp_path / "dask" / "lr=0.1"
    assert not list(retried.glob(".*.tmp"))  # no half-written file left by the killed attempt
    assert read_checkpoint(retried / LAST_CHECKPOINT)["history"] == rows[0]["history"]
