"""Executing the notebooks with papermill: streams merged, an HTML copy beside each executed notebook.

python -m runner.execute run [-p NAME VALUE ...]  # make run: the three notebooks -> runs/<timestamp>/ (-p: 03's)
python -m runner.execute refresh                  # make notebooks: re-execute the committed notebooks in place
"""

import json
import shutil
import sys
import time
from pathlib import Path

from utils.config import make_output_dir, runs_dir
from utils.datafiles import REPO_ROOT
from utils.files import atomic_write, write_json
from utils.models import MODELS

import papermill as pm
import yaml
from nbconvert import HTMLExporter

from .cli import ArgumentParser, environment
from .evidence import COMMITTED_METRICS, COMMITTED_ONNX, RESULTS_DIR, WHERE_IT_RAN

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = ("01_model_design", "02_augmentation", "03_training")
CELL_TIMEOUT = 900  # seconds a cell may run; the longest, 15 epochs of s7 on a 2-core CPU, takes a few minutes


def execute(name: str, output: Path, parameters=None, echo: bool = False, folder: Path = NOTEBOOK_DIR) -> Path:
    """Execute `folder`/<name>.ipynb into `output` (its folder created if needed). Each cell's stream outputs are
    merged; `echo` copies the kernel's stdout here as it comes, with the progress bar only where this is a
    terminal (into a log, one line per epoch). Outside `folder` an HTML rendering is written beside `output`, also
    when a cell fails (papermill's PapermillExecutionError is raised after it)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    bars = {} if echo and sys.stdout.isatty() else {"TQDM_DISABLE": "1"}  # read by the kernel's tqdm
    try:
        with environment(**bars):
            pm.execute_notebook(
                folder / f"{name}.ipynb",
                output,
                parameters=parameters or {},
                progress_bar=False,
                cwd=str(folder),
                stdout_file=sys.stdout if echo else None,
                coalesce_streams=True,
                execution_timeout=CELL_TIMEOUT,
                # The kernel's own log stays quiet: its notices at start-up, and "KeyboardInterrupt caught in kernel"
                # at shutdown (jupyter_client interrupts every kernel before stopping it). Cell errors are unaffected.
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            )
    finally:
        if output.exists() and output.parent.resolve() != folder.resolve():
            html, _ = HTMLExporter().from_filename(str(output))
            atomic_write(output.with_suffix(".html"), lambda p: p.write_text(html))
    return output


def run(parameters=None) -> Path:
    """The three notebooks into one run folder, 03 with `parameters` over its defaults, then a summary of the
    training."""
    out = make_output_dir()
    given = {  # 01 writes no file; 02 and 03 write theirs into the run folder
        "01_model_design": {},
        "02_augmentation": {"output_dir": str(out)},
        "03_training": {"output_dir": str(out), **(parameters or {})},
    }
    for name in NOTEBOOKS:
        print(f"{name}: executing -> {out / name}.ipynb", flush=True)
        start = time.time()
        try:
            execute(name, out / f"{name}.ipynb", given[name], echo=name == "03_training")
        except pm.PapermillExecutionError as err:
            sys.exit(f"{name} failed: {err.ename}: {err.evalue}. The executed notebook shows where: {out / name}.html")
        print(f"{name}: done in {time.time() - start:.0f} s", flush=True)
    print("\n" + summary(json.loads((out / "metrics.json").read_text()), out))
    return out


def summary(metrics: dict, out: Path) -> str:
    """What `make run` prints at its end: the run's accuracies on the split it was scored on, its target, its files."""
    history, model, split = metrics["history"], metrics["model"], metrics["split"]
    best = max(history, key=lambda h: h["eval_acc"])
    return "\n".join(
        [
            f"{model}: final {split} accuracy {history[-1]['eval_acc']:.2%}, best {best['eval_acc']:.2%} "
            f"(epoch {best['epoch']}), {metrics['seconds']:.0f} s of training",
            f"target: {MODELS[model].target.verdict(history)}",
            f"notebooks (open in a browser): {', '.join(str(out / n) + '.html' for n in NOTEBOOKS)}",
            f"plots: {', '.join(sorted(p.name for p in out.glob('*.png')))} in {out}",
            f"checkpoint: {metrics['checkpoint']}; metrics: {out / 'metrics.json'}",
        ]
    )


def refresh(folder: Path = NOTEBOOK_DIR, results: Path = RESULTS_DIR, parameters=None) -> None:
    """Re-execute the notebooks in `folder` in place (03 with `parameters` over its defaults); their files go to
    runs/<timestamp>/, and 03's ONNX model and metrics.json become results/03_training.onnx and .metrics.json
    (what the site, make kinds and the tests read)."""
    before = set(runs_dir().glob("*"))
    for name in NOTEBOOKS:
        print(f"{name}: executing in place", flush=True)
        execute(name, folder / f"{name}.ipynb", parameters if name == "03_training" else None, folder=folder)
    (run,) = [f for f in set(runs_dir().glob("*")) - before if (f / "metrics.json").exists()]
    metrics = json.loads((run / "metrics.json").read_text())
    onnx, kept = results / COMMITTED_ONNX.name, results / COMMITTED_METRICS.name
    shutil.copy(run / f"{metrics['model']}.onnx", onnx)
    write_json(kept, {k: v for k, v in metrics.items() if k not in WHERE_IT_RAN})
    print(f"{onnx.name} and {kept.name} in {results} <- {run}", flush=True)


def main(argv=None) -> None:
    parser = ArgumentParser(prog="python -m runner.execute", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "refresh"])
    parser.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                        help="run: a parameter of 03_training (VALUE read as YAML: 3, 0.1, None, true)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "refresh":
        if args.p:
            parser.error("refresh executes the committed notebooks with their defaults; -p is for run")
        refresh()
    else:
        run({name: yaml.safe_load(value) for name, value in args.p})


if __name__ == "__main__":
    main()
