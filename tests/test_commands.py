"""`make run` and `make notebooks` end to end on a tiny subset; every command a user types answers a bad command
line with one line naming the problem and the fix, runs nothing and writes nothing (the sweep's cases are in
test_sweep.py, make fork's in test_fork.py)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

from utils.history import epoch_line

import pytest
from test_notebooks import check_training_run, outputs_text

from benchmarks import speed, step_options
from runner import execute, gpu_check
from runner.evidence import COMMITTED_METRICS, COMMITTED_ONNX, WHERE_IT_RAN, without_seconds
from runner.execute import NOTEBOOK_DIR, NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "main,argv,message",
    [
        (speed.main, ["--device", "tpu"], "device='tpu' is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'"),
        (speed.main, ["--quick", "--batches", "0"], "--batches 0 --workers 0: expected --batches >= 1, --workers >= 0"),
        (speed.main, ["--workers", "-1"], "expected --batches >= 1, --workers >= 0"),
        (speed.main, ["--data-dir", "{file}/below"], "give a data folder this user can write to"),
        (speed.main, ["--out", "{file}"], "a file; give a folder"),
        (step_options.main, ["--steps", "0"], "--batch-size 128 --steps 0: expected integers >= 1"),
        (step_options.main, ["--model", "s9"], "argument --model: invalid choice: 's9'"),
        (
            step_options.main,
            ["--device", "cuda:x"],
            "device='cuda:x' is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'",
        ),
    ],
)
def test_bad_benchmark_command_is_one_line(tmp_path, capsys, main, argv, message):
    (tmp_path / "file").write_text("a file where a folder is expected")
    with pytest.raises(SystemExit) as exit_:
        main([a.format(file=tmp_path / "file") for a in argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and err.count("\n") == 1 and "see python -m benchmarks." in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["go"], "argument command: invalid choice: 'go'"),
        (["refresh", "-p", "epochs", "1"], "refresh executes the committed notebooks with their defaults"),
    ],
)
def test_bad_execute_command_is_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        execute.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and err.count("\n") == 1


TINY = dict(subset=1000, epochs=2, batch_size=100)


@pytest.mark.slow
def test_make_run_on_a_tiny_subset_writes_every_file_of_the_run_and_logs_one_line_per_epoch(tmp_path, mnist_root):
    """`make run` as typed, its output into a pipe (as in CI's log or `make run > log`): every file of the run, what
    03 wrote checked (`check_training_run`), and each epoch as one line, without a progress bar's carriage returns."""
    params = " ".join(f"-p {k} {v}" for k, v in TINY.items())
    done = subprocess.run(
        ["make", "-s", "run", f"PARAMS={params}"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "RUNS_DIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (run,) = tmp_path.iterdir()
    assert {p.name for p in run.iterdir()} >= {
        *(f"{n}.{ext}" for n in NOTEBOOKS for ext in ("ipynb", "html")),
        *("augmentations-recipe.png", "augmentations-strong.png", "curves.png", "confusion.png", "misclassified.png"),
        *("metrics.json", "last.pt", "s7.onnx", "tensorboard"),
    }
    check_training_run(run, TINY["epochs"], TINY["batch_size"])
    assert "\r" not in done.stdout and "def train_step" not in done.stdout  # 03 shows the source; the log does not
    epochs = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert "target: " in done.stdout and "-> NOT met" in done.stdout  # a subset: reported, not asserted


@pytest.mark.slow
def test_make_notebooks_re_executes_them_in_place_and_keeps_the_run_as_data(tmp_path, mnist_root, monkeypatch):
    """`make notebooks`' refresh on a copy of the notebooks, 03 on a tiny subset: the notebooks hold the new run's
    outputs, and its model and metrics (without where it ran) are what the site, make kinds and the tests read."""
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    folder, results = tmp_path / "notebooks", tmp_path / "results"
    shutil.copytree(NOTEBOOK_DIR, folder)
    results.mkdir()
    execute.refresh(folder, results, TINY)
    text = outputs_text(folder / "03_training.ipynb")
    metrics = json.loads((results / COMMITTED_METRICS.name).read_text())
    assert (metrics["subset"], len(metrics["history"])) == (1000, 2) and set(WHERE_IT_RAN).isdisjoint(metrics)
    printed = [without_seconds(line) for line in text.splitlines() if line.startswith("epoch ")]
    assert printed == [without_seconds(epoch_line(row, 2)) for row in metrics["history"]]
    assert (results / COMMITTED_ONNX.name).stat().st_size > 10_000
    assert "\r" not in text and "it/s" not in text


def test_make_runs_summary_names_the_split_a_validation_run_was_scored_on(tmp_path):
    history = [dict(epoch=e, split="val", train_acc=0.99, eval_acc=a) for e, a in enumerate([0.98, 0.995, 0.99], 1)]
    metrics = dict(model="s7", split="val", history=history, seconds=12.3, checkpoint="last.pt")
    text = execute.summary(metrics, tmp_path)
    assert text.startswith("s7: final val accuracy 99.00%, best 99.50% (epoch 2), 12 s of training\n")
    assert "on the validation split (the target is for the test set) -> NOT met" in text  # 3 epochs, one < 99.4%


def test_gpu_check_without_a_gpu_is_one_line_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) is None
    assert capsys.readouterr().out == "gpu check skipped: no CUDA GPU here (torch.cuda.is_available() is False)\n"
    assert list(tmp_path.iterdir()) == []
