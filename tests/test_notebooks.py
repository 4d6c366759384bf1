"""Papermill smoke runs of every notebook with small parameters, checking what they write."""

import ast
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

from utils import numerics
from utils.checkpoints import LAST_CHECKPOINT, read_checkpoint
from utils.config import PARAMETERS, TrainParams
from utils.files import UMASK as umask
from utils.history import ROW, epoch_line
from utils.models import MODELS, get_model, recipe

import matplotlib.image
import numpy as np
import onnxruntime as ort
import papermill as pm
import pytest
import torch
from conftest import OTHER_MACHINE_SANITIZER, without_timings
from nbval.plugin import get_sanitize_patterns
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from runner.evidence import committed_lines, committed_metrics, without_seconds

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SANITIZE = Path(__file__).resolve().parent / "nbval_sanitize.cfg"
TRAINING = NOTEBOOKS / "03_training.ipynb"
SMALL = dict(subset=1000, epochs=3, batch_size=100, device="cpu", validation=True, ema=0.99, label_smoothing=0.1)


def run(name, folder, **parameters):
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    pm.execute_notebook(NOTEBOOKS / name, out, parameters=parameters, progress_bar=False, cwd=str(NOTEBOOKS))
    return out


def outputs_text(path):
    nb = json.loads(Path(path).read_text())
    return "\n".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c["outputs"]
    )


@pytest.mark.slow
def test_model_design_notebook(tmp_path):
    text = outputs_text(run("01_model_design.ipynb", tmp_path, model="s5"))
    assert "s5: 24,834 trainable parameters (budget < 25,000)" in text
    assert "Total params" in text and "output (4, 10)" in text


@pytest.mark.slow
def test_augmentation_notebook(tmp_path, mnist_root):
    text = outputs_text(run("02_augmentation.ipynb", tmp_path, n_samples=4, rotation=20.0, output_dir=str(tmp_path)))
    assert "s7's recipe: rotation ±7.0°, translation ±5%, zoom ±2%, erasing 0%" in text  # read from recipes/s7.yaml
    for grid in ("recipe", "strong"):
        assert matplotlib.image.imread(tmp_path / f"augmentations-{grid}.png").shape[:2] > (200, 400)
    assert "stronger: shape kept True, range kept True, pixels changed True" in text


def check_training_run(folder: Path, epochs: int, batch_size: int) -> None:
    """What a run of 03 on a subset writes into `folder` (`make run`'s test calls it): metrics.json, checkpoints,
    PNGs, ONNX, TensorBoard events, the HTML copy, one line per epoch, the target reported and not asserted, and
    the files' modes."""
    m = json.loads((folder / "metrics.json").read_text())
    assert {
        "model",
        "params",
        "epochs",
        "seed",
        "device",
        "batch_size",
        "history",
        "split",
        "best_acc",
        "final_acc",
        "train_seconds",
        "seconds",
        "checkpoint",
    } <= set(m)
    assert (m["model"], m["epochs"], m["batch_size"], m["seed"], m["device"]) == ("s7", epochs, batch_size, 1, "cpu")
    assert [h["epoch"] for h in m["history"]] == list(range(1, epochs + 1))
    for h in m["history"]:
        assert tuple(h) == ROW and h["split"] == m["split"] == "test"
        assert 0 <= h["train_acc"] <= 1 and 0 <= h["eval_acc"] <= 1
    assert m["final_acc"] == m["history"][-1]["eval_acc"] and m["best_acc"] >= m["final_acc"]
    assert m["checkpoint"] == str(folder / LAST_CHECKPOINT)
    ckpt = read_checkpoint(folder / LAST_CHECKPOINT)
    assert ckpt["model_name"] == "s7" and ckpt["history"] == m["history"]
    saved = get_model("s7")
    saved.load_state_dict(ckpt["model"])  # the evaluated weights: what the ONNX file holds too
    for png in ("curves.png", "misclassified.png", "confusion.png"):
        assert (folder / png).stat().st_size > 5_000
    nb = json.loads((folder / "03_training.ipynb").read_text())
    training = next(c for c in nb["cells"] if "history = fit(" in "".join(c["source"]))
    assert [o["output_type"] + ":" + o["name"] for o in training["outputs"]] == ["stream:stdout"]  # merged, no stderr
    lines = "".join(training["outputs"][0]["text"]).splitlines()  # the progress bars cleared: a line per epoch
    assert [line.split(": train loss")[0] for line in lines] == [f"epoch {e}/{epochs}" for e in range(1, epochs + 1)]
    onnx = ort.InferenceSession(str(folder / "s7.onnx"))  # the same model as ONNX, beside the checkpoint
    x = torch.rand(5, 1, 28, 28)
    assert np.abs(onnx.run(["logits"], {"image": x.numpy()})[0] - saved.eval()(x).detach().numpy()).max() < 1e-4
    events = EventAccumulator(str(folder / "tensorboard")).Reload()  # read back what TensorBoard shows
    assert [(e.step, e.value) for e in events.Scalars("accuracy/test")] == [
        (h["epoch"], pytest.approx(h["eval_acc"])) for h in m["history"]
    ]
    assert {"loss/train", "loss/test", "accuracy/train", "lr", "seconds", "hparam/final_acc"} <= set(
        events.Tags()["scalars"]
    )
    start = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    assert set(start.session_start_info.hparams) == set(PARAMETERS)  # every parameter, for the HPARAMS tab
    assert start.session_start_info.hparams["lr"].number_value == m["lr"]
    html = (folder / "03_training.html").read_text()
    assert "s7 target:" in html and html.count("<img") >= 3
    check = next(c for c in nb["cells"] if "target-check" in c["metadata"].get("tags", []))
    assert "".join(check["outputs"][0]["text"]).endswith("-> NOT met\n")  # a subset is not the recipe: reported,
    assert check["metadata"]["papermill"]["status"] == "completed"  # and the target's assert does not fire
    files = (".json", ".pt", ".onnx")
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in folder.iterdir() if p.suffix in files} == {
        "metrics.json": oct(0o666 & ~umask),
        "s7.onnx": oct(0o666 & ~umask),
        "last.pt": oct(0o666 & ~umask),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,how,typo,message",
    [
        ("01_model_design", "api", "modle", "modle is not a parameter of 01_model_design (did you mean model?)"),
        (
            "02_augmentation",
            "command line",
            "rotaton",
            "rotaton is not a parameter of 02_augmentation (did you mean rotation?)",
        ),
        ("03_training", "-f file", "learnig_rate", "learnig_rate is not a parameter of 03_training (did you mean lr?)"),
        ("01_model_design", "api", "model", "model=0.05 is invalid: expected one of s5, s6, s7, s7_tiny"),  # a value
    ],
)
def test_an_unknown_name_or_a_bad_value_stops_the_run_before_any_work_with_one_line(tmp_path, name, how, typo, message):
    """A name once per notebook, each through one of papermill's ways in, and a bad value in 01, which trains
    nothing (every bad value's message: test_bad_inputs.py). Papermill itself only warns ("Passed unknown
    parameter") and runs with the default."""
    out = tmp_path / "out"
    given = {typo: 0.05, **({"output_dir": str(out)} if name != "01_model_design" else {})}
    if how == "api":
        with pytest.raises(pm.PapermillExecutionError) as err:
            run(f"{name}.ipynb", tmp_path, **given)
        shown = err.value.traceback
    else:
        (tmp_path / "params.yaml").write_text(json.dumps(given))
        args = (
            ["-f", str(tmp_path / "params.yaml")]
            if how == "-f file"
            else [a for k, v in given.items() for a in ("-p", k, str(v))]
        )
        papermill = Path(sys.executable).parent / "papermill"
        done = subprocess.run(
            [papermill, NOTEBOOKS / f"{name}.ipynb", tmp_path / "executed.ipynb", *args, "--cwd", NOTEBOOKS],
            capture_output=True,
            text=True,
        )
        assert done.returncode != 0
        shown = done.stderr.splitlines()
    assert f"ParameterError: parameter {message}" in shown  # the kernel's error, one line, no traceback of ours
    assert not out.exists()  # nothing written


def kernel_pids(parent: int) -> list[int]:
    """Processes started by `parent` (the notebook's kernel under papermill), read from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


@pytest.fixture(scope="module")
def small_notebook(tmp_path_factory, mnist_root) -> Path:
    """03 executed once with SMALL, for the three tests below (one xdist group: one worker runs them)."""
    folder = tmp_path_factory.mktemp("small")
    return run("03_training.ipynb", folder, **SMALL, output_dir=str(folder / "out"))


@pytest.mark.slow
@pytest.mark.xdist_group("small_notebook")
def test_training_notebook_on_the_validation_split_never_reports_test_accuracy(small_notebook):
    m = json.loads((small_notebook.parent / "out" / "metrics.json").read_text())
    assert (m["validation"], m["ema"], m["label_smoothing"]) == (True, 0.99, 0.1)
    assert m["split"] == "val" and m["final_acc"] == m["history"][-1]["eval_acc"]
    assert all(h["split"] == "val" for h in m["history"])
    text = outputs_text(small_notebook)
    assert "val images: 10,000" in text and "| val loss " in text and "test loss" not in text
    assert "on the validation split (the target is for the test set) -> NOT met" in text


@pytest.mark.slow
@pytest.mark.xdist_group("small_notebook")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the kernel process through /proc")
def test_killed_run_leaves_only_loadable_files_and_resumes_to_the_uninterrupted_history(tmp_path, small_notebook):
    full = json.loads((small_notebook.parent / "out" / "metrics.json").read_text())
    cut = tmp_path / "cut"
    args = [arg for k, v in {**SMALL, "output_dir": cut}.items() for arg in ("-p", k, str(v))]
    papermill = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "papermill",
            "--log-level",
            "ERROR",
            NOTEBOOKS / "03_training.ipynb",
            tmp_path / "cut.ipynb",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not (cut / LAST_CHECKPOINT).exists():  # kill as soon as epoch 1 is saved: training is mid-run
        assert papermill.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    for pid in kernel_pids(papermill.pid):
        os.kill(pid, signal.SIGKILL)
    os.killpg(papermill.pid, signal.SIGKILL)
    papermill.wait()

    assert not (cut / "metrics.json").exists()  # it really died before the end
    for path in cut.iterdir():  # every artefact present loads; *.tmp are unfinished writes, never read
        if path.suffix == ".pt":
            assert read_checkpoint(path)["epoch"] < SMALL["epochs"]
        elif path.suffix == ".png":
            assert matplotlib.image.imread(path).size > 0
        elif path.name == "tensorboard":  # event files are appended and flushed per epoch
            assert EventAccumulator(str(path)).Reload().Scalars("accuracy/val")[0].step == 1
        else:
            assert path.name.endswith(".tmp"), f"unexpected file {path.name}"
    run("03_training.ipynb", tmp_path / "b", **SMALL, resume=str(cut / LAST_CHECKPOINT))
    resumed = json.loads((cut / "metrics.json").read_text())
    assert without_timings(resumed["history"]) == without_timings(full["history"])
    assert resumed["final_acc"] == full["final_acc"]


def nbval(notebook) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            str(SANITIZE),
            str(notebook),
        ],
        capture_output=True,
        text=True,
        cwd=Path(notebook).parent,
    )


@pytest.mark.slow
@pytest.mark.xdist_group("small_notebook")
def test_seeded_small_run_passes_nbval_and_a_changed_number_fails(tmp_path, small_notebook):
    nb = json.loads(small_notebook.read_text())
    training = next(i for i, c in enumerate(nb["cells"]) if "history = fit(" in "".join(c["source"]))
    cell = nb["cells"][training]
    assert "".join(cell["source"]).startswith("# NBVAL_CHECK_OUTPUT")
    lines = "".join("".join(o.get("text", "")) for o in cell["outputs"])
    shown = "\n".join(line.rsplit("\r", 1)[-1] for line in lines.split("\n"))  # as nbval sees it: bars overwritten
    assert shown.count("%") == 2 * SMALL["epochs"]  # train and validation accuracy of every epoch are checked
    result = nbval(small_notebook)  # executed again, into the same output folder
    assert result.returncode == 0, result.stdout[-3000:]
    last_acc = lines.rsplit("acc ", 1)[1].split()[0]  # the last epoch's validation accuracy, e.g. 61.42%
    cell["outputs"] = [nbformat_stream(lines.replace(last_acc, "12.34%"))]
    del nb["cells"][training + 1 :]  # what comes after the training (plots, export) cannot make it pass
    tampered = tmp_path / "tampered.ipynb"
    tampered.write_text(json.dumps(nb))
    assert nbval(tampered).returncode != 0  # the check can fail


def nbformat_stream(text):
    return {"name": "stdout", "output_type": "stream", "text": text}


def sanitized(history, config=SANITIZE):
    """The per-epoch lines as nbval compares them under a sanitizer file."""
    text = "\n".join(epoch_line(row, len(history)) for row in history)
    for regex, replace in get_sanitize_patterns(config.read_text()):
        text = re.sub(regex, replace, text)
    return text


EPOCH = dict(
    epoch=1, split="test", train_loss=0.1, train_acc=0.97, eval_loss=0.05, eval_acc=0.985, lr=0.01, seconds=9.84
)


def test_sanitizer_hides_only_the_seconds_whatever_their_width():
    assert sanitized([EPOCH]) == sanitized([{**EPOCH, "seconds": 123.4}])  # "9.8 s" vs "123.4 s"
    assert sanitized([EPOCH]) != sanitized([{**EPOCH, "eval_acc": 0.9851}])
    assert sanitized([EPOCH]) != sanitized([{**EPOCH, "lr": 0.02}])


def test_other_machine_sanitizer_hides_the_numbers_but_not_the_epochs():
    two = [EPOCH, {**EPOCH, "epoch": 2}]
    assert sanitized(two, OTHER_MACHINE_SANITIZER) == sanitized(
        [{**EPOCH, "eval_acc": 0.9717, "seconds": 52.1}, {**EPOCH, "epoch": 2, "train_loss": 0.2}],
        OTHER_MACHINE_SANITIZER,
    )
    assert sanitized(two, OTHER_MACHINE_SANITIZER) != sanitized([EPOCH], OTHER_MACHINE_SANITIZER)
    assert sanitized(two, OTHER_MACHINE_SANITIZER) == "epoch 1/2: NUMBERS\nepoch 2/2: NUMBERS"


def test_committed_run_is_the_committed_notebooks_run_with_the_portable_numerics():
    """results/03_training.metrics.json, which the site, make kinds and the tests read, is the run the committed
    notebook printed: its "runs on" line and every epoch line."""
    text = outputs_text(TRAINING)
    printed = [without_seconds(line) for line in text.splitlines() if re.match(r"epoch \d+/\d+: ", line)]
    assert printed == committed_lines() and len(printed) == recipe("s7")["epochs"]
    machine = committed_metrics()["machine"]
    assert f"runs on {machine}\n" in text and machine.startswith("cpu, portable x86-64 AVX2 numerics, 2 threads, ")


def test_committed_run_reads_true_from_epoch_1_and_meets_its_target():
    """The EMA's accuracy after epoch 1, and the target checked as the notebook checks it."""
    run = committed_metrics()
    assert {k: run[k] for k in recipe("s7")} == recipe("s7") and run["subset"] is None
    assert run["history"][0]["eval_acc"] >= 0.95 and run["split"] == "test"
    assert MODELS["s7"].target.met(run["history"])


@pytest.mark.parametrize("name", ["01_model_design.ipynb", "02_augmentation.ipynb", "03_training.ipynb"])
def test_papermill_sees_every_parameter(name):
    nb = json.loads((NOTEBOOKS / name).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    body = ast.parse("".join(cell["source"])).body
    assigned = [node.target.id for node in body if isinstance(node, ast.AnnAssign)]
    assert all(isinstance(node, (ast.AnnAssign, ast.ImportFrom)) for node in body)  # check_names knows them all
    seen = pm.inspect_notebook(NOTEBOOKS / name)
    assert list(seen) == assigned and len(assigned) >= 1
    assert all(
        p["inferred_type_name"] in ("str", "int", "float", "bool") or p["inferred_type_name"].startswith("Optional[")
        for p in seen.values()
    )  # --help-notebook shows each one's type


def test_training_notebook_parameters_are_trainparams_names_types_and_defaults():
    nb = json.loads((NOTEBOOKS / "03_training.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    namespace = {}
    exec("".join(cell["source"]), namespace)
    declared = {
        node.target.id: eval(ast.unparse(node.annotation), namespace)
        for node in ast.parse("".join(cell["source"])).body
        if isinstance(node, ast.AnnAssign)
    }
    assert declared == {f.name: f.type for f in dataclasses.fields(TrainParams)}
    assert {name: namespace[name] for name in declared} == {f.name: f.default for f in dataclasses.fields(TrainParams)}


def test_training_notebook_defaults_are_the_s7_recipe():
    params = pm.inspect_notebook(NOTEBOOKS / "03_training.ipynb")
    defaults = {k: ast.literal_eval(v["default"]) for k, v in params.items()}
    assert defaults["model"] == "s7" and defaults["subset"] is None
    assert {k: defaults[k] for k in recipe("s7")} == recipe("s7")


def colab_cell(name) -> str:
    nb = json.loads((NOTEBOOKS / name).read_text())
    return "".join(next(c for c in nb["cells"] if "colab-setup" in c["metadata"].get("tags", []))["source"])


@pytest.fixture
def recorded(monkeypatch):
    """subprocess.check_call, os.chdir and sys.path as seen by the Colab cell, recorded instead of done."""
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd: calls.append(cmd))
    monkeypatch.setattr(os, "chdir", lambda path: calls.append(("chdir", path)))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return calls


@pytest.mark.parametrize("name", ["01_model_design.ipynb", "02_augmentation.ipynb", "03_training.ipynb"])
def test_colab_cell_does_nothing_outside_colab(name, recorded):
    path_before = list(sys.path)
    exec(colab_cell(name), {})
    assert recorded == [] and sys.path == path_before


@pytest.mark.parametrize("cloned", [False, True])
def test_colab_cell_clones_installs_and_makes_utils_importable_on_colab(recorded, monkeypatch, capsys, cloned):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(os.path, "isdir", lambda path: cloned)  # second run of the cell: already cloned
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU runtime
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    exec(colab_cell("03_training.ipynb"), {})
    setup = (
        []
        if cloned
        else [
            ["git", "clone", "--depth", "1", "https://github.com/OWNER/REPO", "/content/repo"],
            [sys.executable, "-m", "pip", "install", "-q", "torchsummary", "onnx", "onnxscript"],
        ]
    )
    assert recorded == [*setup, ("chdir", "/content/repo/notebooks")]
    assert sys.path[0] == "/content/repo"
    assert capsys.readouterr().out.startswith("no GPU in this runtime: training runs on cpu, portable x86-64 AVX2")


@pytest.mark.skipif(torch.cuda.is_available() or not numerics.X86_64, reason="the note on a CPU runtime, x86-64")
def test_on_colab_the_device_note_already_runs_under_the_portable_numerics():
    """A fresh Colab kernel has no pins in its environment: the Colab cell applies them before it loads torch."""
    fake_colab = (
        "import os, subprocess, sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab'); "
        "subprocess.check_call = os.chdir = lambda *a: None; os.path.isdir = lambda path: True; "
    )
    fresh = {k: v for k, v in os.environ.items() if k not in (*numerics.PINS, *numerics.THREAD_VARIABLES)}
    code = fake_colab + f"exec({colab_cell('03_training.ipynb')!r})"
    done = subprocess.run([sys.executable, "-c", code], env=fresh, capture_output=True, text=True, check=True)
    assert done.stdout.startswith("no GPU in this runtime: training runs on cpu, portable x86-64 AVX2 numerics")
