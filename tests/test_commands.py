"""Every command a user types answers a bad command line with one line naming the problem and the fix, runs
nothing and writes nothing (the sweep's cases are in test_sweep.py, make fork's in test_fork.py)."""

import subprocess
import sys

import pytest

from benchmarks import speed, step_options


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


def test_bad_execute_command_is_one_line():
    result = subprocess.run([sys.executable, "-m", "utils.execute", "go"], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr == "usage: python -m utils.execute {run,refresh}\n"
