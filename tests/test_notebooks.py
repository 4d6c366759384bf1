"""Papermill smoke runs of every notebook with small parameters, checking what they write."""

import ast
import json
from pathlib import Path

import papermill as pm
import pytest
import torch

from utils.engine import load_checkpoint
from utils.models import MODELS

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run(name, tmp_path, **parameters):
    out = tmp_path / name
    pm.execute_notebook(NOTEBOOKS / name, out, parameters=parameters, progress_bar=False, cwd=str(NOTEBOOKS))
    return out


def outputs_text(path):
    nb = json.loads(Path(path).read_text())
    return "\n".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
        for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]
    )


def test_model_design_notebook(tmp_path):
    text = outputs_text(run("01_model_design.ipynb", tmp_path, model="s5"))
    assert "s5: 24,834 trainable parameters (budget < 25,000)" in text
    assert "Total params" in text and "output (4, 10)" in text


def test_augmentation_notebook(tmp_path, mnist_root):
    text = outputs_text(run("02_augmentation.ipynb", tmp_path, n_samples=4, rotation=15.0, output_dir=str(tmp_path)))
    assert (tmp_path / "augmentations.png").stat().st_size > 5_000
    assert "pixels changed: True" in text and "range kept: True" in text


def test_training_notebook_smoke_run_writes_metrics_and_checkpoint(tmp_path, mnist_root):
    run("03_training.ipynb", tmp_path, subset=2000, epochs=2, batch_size=100, output_dir=str(tmp_path))
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert {"model", "params", "epochs", "seed", "device", "batch_size", "history", "best_test_acc",
            "final_test_acc", "train_seconds", "seconds", "checkpoint"} <= set(m)
    assert (m["model"], m["epochs"], m["batch_size"], m["seed"], m["device"]) == ("s7", 2, 100, 1, "cpu")
    assert [h["epoch"] for h in m["history"]] == [1, 2]
    for h in m["history"]:
        assert {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_seconds", "seconds"} <= set(h)
        assert 0 <= h["train_acc"] <= 1 and 0 <= h["test_acc"] <= 1
    assert m["final_test_acc"] == m["history"][-1]["test_acc"] and m["best_test_acc"] >= m["final_test_acc"]
    model, ckpt = load_checkpoint(m["checkpoint"])
    assert ckpt["model_name"] == "s7" and ckpt["history"] == m["history"]
    assert model(torch.rand(1, 1, 28, 28)).shape == (1, 10)
    for png in ("curves.png", "misclassified.png", "confusion.png"):
        assert (tmp_path / png).stat().st_size > 5_000


def test_bad_parameter_fails_the_papermill_run_with_its_message(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match=r"parameter epochs=0 is invalid: expected an integer >= 1"):
        run("03_training.ipynb", tmp_path, epochs=0, output_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # nothing written before the check


@pytest.mark.parametrize("name", ["01_model_design.ipynb", "02_augmentation.ipynb", "03_training.ipynb"])
def test_papermill_sees_every_parameter(name):
    nb = json.loads((NOTEBOOKS / name).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    assigned = {t.id for node in tree.body for t in ast.walk(node.targets[0]) if isinstance(t, ast.Name)}
    assert set(pm.inspect_notebook(NOTEBOOKS / name)) == assigned


def test_training_notebook_defaults_are_the_s7_recipe():
    params = pm.inspect_notebook(NOTEBOOKS / "03_training.ipynb")
    defaults = {k: ast.literal_eval(v["default"]) for k, v in params.items()}
    assert defaults["model"] == "s7" and defaults["subset"] is None
    shared = [k for k in MODELS["s7"].recipe if k in defaults]
    assert {k: defaults[k] for k in shared} == {k: MODELS["s7"].recipe[k] for k in shared}
    assert len(shared) >= 6
