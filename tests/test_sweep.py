import csv
import json
import os

import pytest

from utils.sweep import expand_grid, main, run_sweep


def test_grid_expands_lists_and_shares_scalars():
    runs = expand_grid({"model": ["s7", "s5"], "epochs": 2, "seed": [1, 2]})
    assert runs == [dict(model="s7", epochs=2, seed=1), dict(model="s7", epochs=2, seed=2),
                    dict(model="s5", epochs=2, seed=1), dict(model="s5", epochs=2, seed=2)]


def test_sweep_records_a_failed_run_and_summarizes_all(tmp_path, mnist_root):
    grid = {"lr": [0.05, -1.0], "subset": 500, "epochs": 1, "batch_size": 100, "device": "cpu"}
    threads = os.environ.get("OMP_NUM_THREADS")
    rows = run_sweep(grid, tmp_path, jobs=2)
    assert os.environ.get("OMP_NUM_THREADS") == threads  # the per-kernel thread count does not leak out
    assert [(r["run"], r["status"]) for r in rows] == [("lr=0.05", "ok"), ("lr=-1.0", "failed")]
    assert rows[1]["error"] == "ParameterError: parameter lr=-1.0 is invalid: expected a finite number > 0"
    metrics = json.loads((tmp_path / "lr=0.05" / "metrics.json").read_text())
    assert (tmp_path / "lr=0.05" / "03_training.ipynb").exists()
    with open(tmp_path / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["run"], r["status"], r["lr"]) for r in table] == [("lr=0.05", "ok", "0.05"),
                                                                 ("lr=-1.0", "failed", "-1.0")]
    assert float(table[0]["final_test_acc"]) == metrics["final_test_acc"] and table[1]["final_test_acc"] == ""
    md = (tmp_path / "summary.md").read_text()
    assert f"| lr=0.05 | 0.05 | ok | {metrics['best_test_acc']:.2%} | {metrics['final_test_acc']:.2%} |" in md
    assert "| lr=-1.0 | -1.0 | failed (ParameterError: parameter lr=-1.0 is invalid: expected a finite number > 0) " \
           "| – | – | – |" in md
    assert (tmp_path / "summary.png").stat().st_size > 5_000


def test_unknown_grid_parameter_is_refused_before_any_run(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("model: [s7]\nlearning_rate: [0.1, 0.2]\n")
    with pytest.raises(SystemExit):
        main([str(grid), "--out", str(tmp_path / "out")])
    assert "learning_rate not a parameter of 03_training.ipynb" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
