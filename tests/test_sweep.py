import csv
import json
import os
from pathlib import Path

from utils.config import PARAMETERS, check_params
from utils.numerics import THREAD_VARIABLES

import nbformat
import pytest
import yaml

from runner import runs, sweep
from runner.cli import environment
from runner.grid import expand_grid
from runner.reports import seeds_report, write_summary
from runner.sweep import main, run_sweep


def test_grid_expands_lists_and_shares_scalars():
    runs = expand_grid({"model": ["s7", "s5"], "epochs": 2, "seed": [1, 2]})
    assert runs == [
        dict(model="s7", epochs=2, seed=1),
        dict(model="s7", epochs=2, seed=2),
        dict(model="s5", epochs=2, seed=1),
        dict(model="s5", epochs=2, seed=2),
    ]


@pytest.mark.parametrize("grid_file", sorted(Path(__file__).parents[1].glob("sweeps/*.yaml")), ids=lambda p: p.name)
def test_committed_grids_hold_only_valid_runs(grid_file):
    grid = yaml.safe_load(grid_file.read_text())
    assert set(grid) <= set(PARAMETERS) - {"output_dir"}
    runs = expand_grid(grid)
    assert len(runs) > 1
    for params in runs:
        check_params(params)  # raises ParameterError on a bad value or a wrong type


def test_kernels_get_the_thread_count_and_not_dasks_malloc_trim(tmp_path, monkeypatch):
    for name, value in [("MALLOC_TRIM_THRESHOLD_", "65536"), *((v, "1") for v in THREAD_VARIABLES)]:
        monkeypatch.setenv(name, value)  # as Dask's nannies set them in their workers; restored after the test
    seen = {}
    monkeypatch.setattr(runs, "execute", lambda *args: seen.update(os.environ))
    runs.run_one(tmp_path / "run", {"epochs": 1}, threads=3)
    assert "MALLOC_TRIM_THRESHOLD_" not in seen  # a kernel with it trains 2.4x slower
    assert all(seen[v] == "3" for v in THREAD_VARIABLES)


def test_environment_changes_last_for_the_block_only(monkeypatch):
    monkeypatch.setenv("MNIST_TEST_KEPT", "before")
    before = dict(os.environ)
    with pytest.raises(KeyError), environment(TQDM_DISABLE="1"):
        assert os.environ["TQDM_DISABLE"] == "1"  # for the kernels started in the block
        os.environ["PYTHONHASHSEED"] = "0"  # as a Dask nanny sets it in the process that starts it
        del os.environ["MNIST_TEST_KEPT"]
        raise KeyError  # a failing block undoes them too
    assert dict(os.environ) == before


@pytest.mark.slow
def test_sweep_records_a_failed_run_and_summarizes_all(tmp_path, mnist_root):
    grid = {"lr": [0.05, 1e6], "subset": 500, "epochs": 1, "batch_size": 100, "device": "cpu"}  # 1e6 diverges
    before = dict(os.environ)
    rows = run_sweep(grid, tmp_path, jobs=2)
    assert dict(os.environ) == before  # what the nannies set for their workers (OMP_NUM_THREADS...) does not leak out
    assert [(r["run"], r["status"]) for r in rows] == [("lr=0.05", "ok"), ("lr=1000000.0", "failed")]
    assert rows[1]["error"].startswith("TrainingDiverged: epoch 1/1: loss became nan at batch ")
    metrics = json.loads((tmp_path / "lr=0.05" / "metrics.json").read_text())
    assert (tmp_path / "lr=0.05" / "03_training.ipynb").exists()
    with open(tmp_path / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["run"], r["status"], r["lr"]) for r in table] == [
        ("lr=0.05", "ok", "0.05"),
        ("lr=1000000.0", "failed", "1000000.0"),
    ]
    assert float(table[0]["final_acc"]) == metrics["final_acc"] and table[1]["final_acc"] == ""
    last3 = min(h["eval_acc"] for h in metrics["history"][-3:])
    assert float(table[0]["last3_min"]) == last3
    md = (tmp_path / "summary.md").read_text()
    assert (
        f"| lr=0.05 | 0.05 | ok | test | {metrics['best_acc']:.2%} | {metrics['final_acc']:.2%} | {last3:.2%} |"
    ) in md
    assert f"| lr=1000000.0 | 1000000.0 | failed ({rows[1]['error']}) | – | – | – | – | – |" in md
    assert (tmp_path / "summary.png").stat().st_size > 5_000


@pytest.mark.parametrize(
    "content,message",
    [
        ("model: [s7]\nlearning_rate: [0.1, 0.2]\n", "learning_rate not a parameter of 03_training.ipynb"),
        ("output_dir: runs/x\n", "output_dir not a parameter of 03_training.ipynb (output_dir is set per run)"),
        ("1: 2\nnull: 3\n", "1, None not a parameter of 03_training.ipynb"),
        ("- 0.05\n- 0.1\n", "expected a mapping of notebook parameters to values or lists of values"),
        ("0.05\n", "expected a mapping of notebook parameters to values or lists of values"),
        ("", "expected a mapping of notebook parameters to values or lists of values"),
        ("{}\n", "expected a mapping of notebook parameters to values or lists of values"),
        ("lr: []\n", "lr: an empty list gives no runs"),
        ("lr: {low: 0.05, high: 0.1}\n", "lr: {'low': 0.05, 'high': 0.1} holds a mapping or a list"),
        ("lr: [[0.05, 0.1]]\n", "lr: [[0.05, 0.1]] holds a mapping or a list"),
        ("seed: [1, 2, 1]\n", "seed: [1, 2, 1] repeats a value (two runs would share a folder)"),
        ("lr: ['0.1', 0.2]\n", "parameter lr='0.1' is invalid: expected a finite number > 0 (run lr=0.1)"),
        ("epochs: ten\n", "parameter epochs='ten' is invalid: expected an integer >= 1"),
        ("model: [s7, s9]\n", "parameter model='s9' is invalid: expected one of s5, s6, s7, s7_tiny (run model=s9)"),
        ("lr: .nan\n", "parameter lr=nan is invalid: expected a finite number > 0"),
        ("data_dir: [/tmp/a, /tmp_a]\n", "two runs would get the same folder name"),
        ("lr: [0.1\n", "cannot be read as YAML or JSON (while parsing a flow sequence"),
        ("\udcff", "cannot be read as YAML or JSON"),
    ],
)
def test_bad_grid_file_is_refused_before_any_run(tmp_path, capsys, content, message):
    grid = tmp_path / "grid.yaml"
    grid.write_bytes(content.encode(errors="surrogateescape"))
    with pytest.raises(SystemExit):
        main([str(grid), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def _seed_row(seed, last_three, split="test"):
    accs = [0.99] * 12 + last_three
    history = [dict(epoch=e + 1, split=split, train_acc=0.99, eval_acc=a) for e, a in enumerate(accs)]
    return dict(run=f"seed={seed}", seed=seed, status="ok", error="", scored_on=split, history=history)


def test_a_sweep_where_no_run_finished_writes_tables_and_no_empty_chart(tmp_path):
    (tmp_path / "summary.png").write_bytes(b"an earlier attempt's chart")
    failed = dict(run="lr=1.0", lr=1.0, status="failed", error="TrainingDiverged: ...")
    write_summary([failed], tmp_path, ["lr"])
    assert "| lr=1.0 | 1.0 | failed (TrainingDiverged: ...) |" in (tmp_path / "summary.md").read_text()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["summary.csv", "summary.md"]


def test_seeds_report_counts_passes_and_names_the_worst_seed(tmp_path):
    rows = [
        _seed_row(1, [0.995, 0.996, 0.995]),
        _seed_row(2, [0.994, 0.9938, 0.996]),
        dict(run="seed=3", seed=3, status="failed", error="KeyboardInterrupt: "),
    ]
    text = seeds_report(rows, "s7", tmp_path)
    assert (
        "| 1 | 99.00 99.00 99.00 99.00 99.00 99.00 99.00 99.00 99.00 99.00 99.00 99.00 99.50 99.60 99.50 | 99.50 "
        "| met |" in text
    )
    assert "| 2 |" in text and "| 99.38 | **missed** |" in text
    assert "| 3 | KeyboardInterrupt:  | – | **failed** |" in text
    assert (
        "1/3 seeds meet the target; lowest accuracy of the last 3 epochs: mean 99.44 ± 0.08 (std), worst 99.38, "
        "bar 99.40" in text
    )
    assert "accuracy after the last epoch (the model saved): mean 99.55 ± 0.07 (std), worst 99.50" in text
    assert (tmp_path / "seeds.md").read_text() == text and (tmp_path / "seeds.png").stat().st_size > 5_000
    assert "scored on the validation split" in seeds_report([_seed_row(1, [0.995] * 3, "val")], "s7", tmp_path)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--seeds", "3"], "give a grid file or --recipe MODEL (not both)"),
        (["sweeps/example.yaml", "--recipe", "s7"], "give a grid file or --recipe MODEL (not both)"),
        (["--recipe", "s7", "--seeds", "0"], "--seeds 0: expected an integer >= 1"),
        (["--recipe", "s9"], "argument --recipe: invalid choice: 's9'"),
        (["no/such/grid.yaml"], "no/such/grid.yaml: cannot be read as YAML or JSON ([Errno 2] No such file"),
        (["--recipe", "s7", "--resume", "no/such/dir"], "--resume no/such/dir: no such folder"),
    ],
)
def test_bad_sweep_command_is_one_line_and_runs_nothing(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        main([*argv, "--out", str(tmp_path / "out")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_resume_keeps_finished_runs_and_reruns_an_interrupted_one(tmp_path, mnist_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, as typed
    grid = tmp_path / "grid.yaml"
    grid.write_text("lr: [0.01, 0.05, 0.1]\nsubset: 500\nepochs: 1\nbatch_size: 100\ndevice: cpu\n")
    out = tmp_path / "out"
    main(["grid.yaml", "--out", "out", "--threads", "1"])  # make test's first half: a core per test
    assert (out / "lr=0.05" / "metrics.json").exists()
    kept, missed, killed = (out / f"lr={lr}" / "03_training.ipynb" for lr in (0.05, 0.01, 0.1))
    nb = nbformat.read(missed, as_version=4)  # as a recipe run that missed its target leaves it: a result to keep
    check = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert check.metadata.tags == ["target-check"]
    check.metadata.papermill.status = "failed"
    check.outputs.append(
        nbformat.v4.new_output("error", ename="AssertionError", evalue="s7 missed its target: ...", traceback=[])
    )
    nbformat.write(nb, missed)
    before = kept.stat().st_mtime_ns, missed.stat().st_mtime_ns
    nb = nbformat.read(killed, as_version=4)  # as a run killed during its training cell leaves it
    [c for c in nb.cells if c.cell_type == "code"][-1].metadata.papermill.status = "running"
    nbformat.write(nb, killed)
    (out / "lr=0.1" / "metrics.json").unlink()

    rows = main(["grid.yaml", "--resume", "out", "--threads", "1"])
    printed = capsys.readouterr().out
    assert "lr=0.05: ok (kept from before)" in printed
    assert "lr=0.01: failed AssertionError: s7 missed its target: ... (kept from before)" in printed
    assert (kept.stat().st_mtime_ns, missed.stat().st_mtime_ns) == before
    assert [(r["run"], r["status"]) for r in rows] == [("lr=0.01", "failed"), ("lr=0.05", "ok"), ("lr=0.1", "ok")]
    assert rows[0]["history"] == json.loads((out / "lr=0.01" / "metrics.json").read_text())["history"]
    assert (out / "lr=0.1" / "metrics.json").exists() and (out / "lr=0.1" / "03_training.html").exists()

    grid.write_text("lr: [0.01, 0.05, 0.1]\nsubset: 600\nepochs: 1\nbatch_size: 100\ndevice: cpu\n")
    with pytest.raises(SystemExit):
        main([str(grid), "--resume", str(out)])
    assert "was run with other parameters" in capsys.readouterr().err


@pytest.mark.slow
def test_several_recipes_each_get_a_folder_and_a_seeds_report(tmp_path, mnist_root, monkeypatch, capsys):
    """`make models` (--recipe all) on tiny stand-ins for the recipes: one folder and seeds.md per model."""
    small = dict(subset=500, epochs=1, batch_size=100, device="cpu")
    monkeypatch.setattr(sweep, "recipe", lambda name: {"model": name, **small})
    rows = main(["--recipe", "s5", "s7", "--seeds", "1", "--out", str(tmp_path)])
    assert [(r["model"], r["run"], r["status"]) for r in rows] == [("s5", "seed=1", "ok"), ("s7", "seed=1", "ok")]
    for model in ("s5", "s7"):
        assert (tmp_path / model / "seed=1" / "metrics.json").exists()
        notebook = (tmp_path / model / "seed=1" / "03_training.ipynb").read_text()
        cores = os.cpu_count()
        assert f", {cores} thread{'s' * (cores != 1)}, torch" in notebook  # --jobs 1: the kernel gets every core
        assert (tmp_path / model / "seeds.md").read_text().startswith(f"{model}: ")
    assert "seeds.md, seeds.png in" in capsys.readouterr().out
