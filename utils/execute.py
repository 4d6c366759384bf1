"""Executing the notebooks with papermill: streams merged, an HTML copy beside each executed notebook.

python -m utils.execute run       # make run: the three notebooks with their defaults -> runs/<timestamp>/
python -m utils.execute refresh   # make notebooks: re-execute the committed notebooks in place (the evidence)
"""

import json
import shutil
import sys
import time
from pathlib import Path

import papermill as pm
from nbconvert import HTMLExporter

from .config import make_output_dir, runs_dir
from .datafiles import REPO_ROOT
from .export import COMMITTED_ONNX
from .files import atomic_write
from .models import MODELS, target_met

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = ("01_model_design", "02_augmentation", "03_training")
CELL_TIMEOUT = 900  # seconds; the longest cell (15 epochs of s7) takes about 150 s on a 2-core CPU


def execute(name: str, output: Path, parameters: dict | None = None, echo: bool = False) -> Path:
    """Execute notebooks/<name>.ipynb into `output` (its folder created if needed). Each cell's stream outputs are
    merged, so a progress bar leaves only what it ends with instead of one output per refresh; `echo` copies the
    kernel's stdout to this terminal as it comes. Outside notebooks/ an HTML rendering is written beside `output`,
    also when a cell fails (papermill's PapermillExecutionError is raised after it)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(
            NOTEBOOK_DIR / f"{name}.ipynb",
            output,
            parameters=parameters or {},
            progress_bar=False,
            cwd=str(NOTEBOOK_DIR),
            stdout_file=sys.stdout if echo else None,
            coalesce_streams=True,
            execution_timeout=CELL_TIMEOUT,
            # The kernel's own log stays quiet: its notices at start-up, and "KeyboardInterrupt caught in kernel"
            # at shutdown (jupyter_client interrupts every kernel before stopping it). Cell errors are unaffected.
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
    finally:
        if output.exists() and output.parent.resolve() != NOTEBOOK_DIR:
            html, _ = HTMLExporter().from_filename(str(output))
            atomic_write(output.with_suffix(".html"), lambda p: p.write_text(html))
    return output


def notebook_text(name: str) -> str:
    """Every text output of the committed notebooks/<name>.ipynb, in order."""
    cells = json.loads((NOTEBOOK_DIR / f"{name}.ipynb").read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def run() -> Path:
    """The three notebooks with their defaults into one run folder, then a summary of the training."""
    out = make_output_dir()
    for name in NOTEBOOKS:
        print(f"{name}: executing -> {out / name}.ipynb", flush=True)
        start = time.time()
        try:
            execute(
                name,
                out / f"{name}.ipynb",
                {"output_dir": str(out)} if name != NOTEBOOKS[0] else {},
                echo=name == "03_training",
            )
        except pm.PapermillExecutionError as err:
            sys.exit(f"{name} failed: {err.ename}: {err.evalue}. The executed notebook shows where: {out / name}.html")
        print(f"{name}: done in {time.time() - start:.0f} s", flush=True)
    metrics = json.loads((out / "metrics.json").read_text())
    history, model = metrics["history"], metrics["model"]
    best = max(history, key=lambda h: h["test_acc"])
    print(
        f"\n{model}: final test accuracy {metrics['final_test_acc']:.2%}, best {best['test_acc']:.2%} "
        f"(epoch {best['epoch']}), {metrics['seconds']:.0f} s of training"
    )
    print(f"target: {MODELS[model].target.text} -> {'met' if target_met(model, history) else 'NOT met'}")
    print(f"notebooks (open in a browser): {', '.join(str(out / n) + '.html' for n in NOTEBOOKS)}")
    print(f"plots: {', '.join(sorted(p.name for p in out.glob('*.png')))} in {out}")
    print(f"checkpoint: {metrics['checkpoint']}; metrics: {out / 'metrics.json'}")
    return out


def refresh() -> None:
    """Re-execute the committed notebooks in place; their files go to runs/<timestamp>/, and 03's ONNX model
    becomes results/03_training.onnx (the model the site's draw page runs)."""
    before = set(runs_dir().glob("*"))
    for name in NOTEBOOKS:
        print(f"{name}: executing in place", flush=True)
        execute(name, NOTEBOOK_DIR / f"{name}.ipynb")
    (run,) = [f for f in set(runs_dir().glob("*")) - before if (f / "metrics.json").exists()]
    model = json.loads((run / "metrics.json").read_text())["model"]
    shutil.copy(run / f"{model}.onnx", COMMITTED_ONNX)
    print(f"{COMMITTED_ONNX.relative_to(REPO_ROOT)} <- {run / model}.onnx", flush=True)


if __name__ == "__main__":
    commands = {"run": run, "refresh": refresh}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python -m utils.execute {{{','.join(commands)}}}")
    commands[sys.argv[1]]()
