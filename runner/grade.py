"""The teacher's grader: a class of forks re-executed in a sandbox, every checked number compared with the commit.

Each student's fork is checked out and its committed 03_training re-executed in a sandbox with the parameters,
thread count and numerics the committed run used; every checked number is compared, and the target checked on the
re-run. Students are Dask tasks; a student's problem is a line in that student's row.

    python -m runner.grade class.yaml [--before 2026-12-01T23:59] [--out grades/<timestamp>]
    python -m runner.grade class.yaml --resume grades/<timestamp>      # after an interruption
    python -m runner.grade class.yaml --scheduler tcp://HOST:8786      # on a Dask cluster (README: Teachers)

class.yaml:  students: [{name: alice, repo: https://github.com/alice/mnist, ref: main}, ...]   (ref optional)
"""

import csv
import dataclasses
import datetime
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from utils.config import make_output_dir
from utils.datafiles import REPO_ROOT, prepare_data
from utils.files import atomic_write, write_json
from utils.history import accuracies
from utils.models import MODELS
from utils.numerics import SWITCH, THREAD_VARIABLES
from utils.plots import save_figure

import matplotlib.pyplot as plt
import yaml
from dask.distributed import as_completed
from nbconvert import HTMLExporter

from . import claims, sandbox
from .cli import ArgumentParser
from .runs import first_line
from .sweep import dask_client

NOTEBOOK = Path("notebooks") / "03_training.ipynb"
COLUMNS = (
    "student commit date model params budget reproduced first_difference target verdict seconds runs_on repo error"
)
COLUMNS = COLUMNS.split()
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ENTRY_KEYS = {"name", "repo", "ref"}


class GradeError(ValueError):
    """The class cannot be graded at all: its class file is no list of students, or the Dask cluster has no cores."""


def read_class(path: Path) -> list[dict]:
    """The students of a class file, in order: each {name, repo, ref} or, for an entry that is wrong, {name, error}
    (named entry-N where its name cannot name a folder of its own)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise GradeError(f"cannot read {path} ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise GradeError(f"{path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("students"), list) or not data["students"]:
        raise GradeError(f"{path} needs `students:`, a list of entries with name, repo and optionally ref")
    entries, seen = [], set()
    for i, entry in enumerate(data["students"], 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        row = {"name": str(name) if name is not None else f"entry-{i}"}
        if not isinstance(entry, dict):
            row["error"] = f"class file entry {i} is not a mapping of name, repo and ref"
        elif unknown := sorted(set(entry) - ENTRY_KEYS, key=str):
            row["error"] = f"class file entry {i} has unknown keys {', '.join(map(str, unknown))} (name, repo, ref)"
        elif not isinstance(name, str) or not NAME.fullmatch(name):
            row = {"name": f"entry-{i}", "error": f"class file entry {i}: name {name!r} must be letters, digits, "
                   "'.', '_' or '-' (it names a folder)"}  # fmt: skip
        elif name in seen:
            row = {"name": f"entry-{i}", "error": f"class file entry {i}: a second student named {name}"}
        elif not isinstance(entry.get("repo"), str) or not entry["repo"]:
            row["error"] = f"class file entry {i} ({name}) has no repo (a git URL or a local path)"
        elif entry.get("ref") is not None and not isinstance(entry["ref"], str):
            row["error"] = f"class file entry {i} ({name}): ref must be a branch, tag or commit"
        else:
            row.update(repo=entry["repo"], ref=entry.get("ref"))
        seen.add(row["name"])
        entries.append(row)
    return entries


def git(*args, cwd=None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # an unreachable private URL fails, it does not ask
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(lines[-1].removeprefix("fatal: ") if lines else f"git {args[0]} failed")
    return done.stdout.strip()


def checkout(entry: dict, repo: Path, before: str | None) -> tuple[str, str]:
    """A fresh clone of the student's repository in `repo` (symbolic links as plain files: nothing in it points
    outside), at `ref` (default: its HEAD), at its last commit before `before`. Returns (commit, its date)."""
    shutil.rmtree(repo, ignore_errors=True)
    source = str(Path(entry["repo"]).resolve()) if Path(entry["repo"]).is_dir() else entry["repo"]
    git("clone", "--quiet", "--no-checkout", "--config", "core.symlinks=false", "--", source, str(repo))
    ref = entry.get("ref")
    for candidate in [ref, f"origin/{ref}"] if ref else ["HEAD"]:
        try:
            commit = git("rev-list", "-n", "1", *([f"--before={before}"] if before else []), candidate, "--", cwd=repo)
        except RuntimeError:
            continue
        if not commit:
            raise RuntimeError(f"no commit of {ref or 'HEAD'} before {before}")
        git("-c", "advice.detachedHead=false", "checkout", "--quiet", commit, cwd=repo)
        return commit, git("show", "-s", "--format=%cI", commit, cwd=repo)
    raise RuntimeError(f"no branch, tag or commit {ref} in {entry['repo']}")


def plan(entry: dict, folder: Path, before: str | None) -> dict:
    """What to re-run for one student: the checkout in `folder`/work/repo, the committed notebook (kept here: the
    run cannot change it), its parameters and machine kind. A problem found here (bad entry, unreachable repository,
    missing or unexecuted notebook) is the row's `error`."""
    start = time.monotonic()
    job = {"student": entry["name"], "repo": entry.get("repo", ""), "folder": str(folder)}
    folder.mkdir(parents=True, exist_ok=True)
    if "error" in entry:
        return {**job, "error": entry["error"], "seconds": 0.0}
    try:
        job["commit"], job["date"] = checkout(entry, folder / "work" / "repo", before)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        return {**job, "error": f"cannot check out {entry['repo']}: {err}", "seconds": time.monotonic() - start}
    job["seconds"] = time.monotonic() - start
    path = folder / "work" / "repo" / NOTEBOOK
    if not path.is_file():
        return {**job, "error": f"no {NOTEBOOK} at commit {job['commit'][:8]}"}
    try:
        nb = json.loads(path.read_text())
        assert isinstance(nb, dict) and isinstance(nb.get("cells"), list)
    except (ValueError, AssertionError, UnicodeDecodeError):
        return {**job, "error": f"{NOTEBOOK} at commit {job['commit'][:8]} is not a readable notebook"}
    if not claims.executed(nb):
        return {**job, "error": f"{NOTEBOOK} is committed without outputs: execute it, then commit it with them"}
    kind = claims.runs_on(nb)
    params = claims.parameters(nb)
    if kind and not kind.startswith("cpu"):  # a GPU's or Apple's run: this machine re-runs it on its CPU
        params["device"] = "cpu"
    portable = kind is None or "portable" in kind or not kind.startswith("cpu")
    threads = claims.threads(kind)
    return {**job, "committed": nb, "kind": kind, "params": params, "threads": threads, "portable": portable}


def rerun(job: dict, limits: sandbox.Limits, data: Path, sandboxed: bool = True) -> dict:
    """Re-execute the student's committed notebook through their own utils (PYTHONPATH), in the sandbox, with the
    committed run's parameters, threads and numerics, with the verified MNIST folder `data` read-only where the
    student's code looks for it; then compare and check. The run may write only in
    `folder`/work; the re-executed notebook is copied out, beside its HTML, its log and the row (row.json)."""
    folder, start = Path(job["folder"]), time.monotonic()
    if "error" in job:
        return finish(job, {"reproduced": "not run", "target": "not run"})
    work = folder / "work"
    repo, executed = work / "repo", work / "03_training.ipynb"
    shutil.rmtree(work / "run", ignore_errors=True)  # an earlier attempt's
    for stale in (executed, *(folder / name for name in ("03_training.ipynb", "03_training.html", "run.log"))):
        stale.unlink(missing_ok=True)
    (work / "home").mkdir(exist_ok=True)
    (repo / "data").mkdir(exist_ok=True)
    params = {**job["params"], "output_dir": str(work / "run")}
    atomic_write(work / "parameters.yaml", lambda p: p.write_text(yaml.safe_dump(params)))
    venv = Path(sys.prefix)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(work / "home"),
        "USER": "student",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "PYTHONPATH": str(repo),  # the student's utils, before the teacher's installed copy
        "MPLBACKEND": "agg",
        "TQDM_DISABLE": "1",
        SWITCH: "1" if job["portable"] else "0",
        **dict.fromkeys(THREAD_VARIABLES, str(job["threads"])),
    }
    papermill = [str(venv / "bin" / "python"), "-m", "papermill", str(repo / NOTEBOOK), str(executed)]
    papermill += ["-f", str(work / "parameters.yaml"), "--cwd", str(repo / "notebooks")]
    papermill += ["--no-progress-bar", "--log-output"]
    limits = dataclasses.replace(limits, cpu_seconds=int(limits.wall_seconds * (job["threads"] + 1)))
    log = folder / "run.log"
    readable = {data: repo / "data"}
    ended = sandbox.run(papermill, work, log, env, limits, readable, repo / "notebooks", sandboxed)
    nb = read(executed)
    if nb is not None:
        shutil.copy(executed, folder / executed.name)
        html, _ = HTMLExporter(sanitize_html=True).from_filename(str(executed))  # the student's HTML made inert
        atomic_write(folder / "03_training.html", lambda p: p.write_text(html))
    result = judge(job, nb, ended, limits, work / "run" / "metrics.json", log)
    return finish({**job, "seconds": job["seconds"] + time.monotonic() - start}, result)


def read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def failure(nb: dict | None, ended: sandbox.Ended, limits: sandbox.Limits, log: Path) -> str | None:
    """Why the re-run did not run to its end (None if it did, or only its target check failed)."""
    if ended.timed_out:
        return f"did not finish within its wall-time limit ({limits.wall_seconds:.0f} s): killed"
    cells = claims.code_cells(nb or {"cells": []})
    errors = [(i, c, o) for i, c in enumerate(cells) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        i, cell, out = errors[0]
        if "target-check" in cell.get("metadata", {}).get("tags", []):
            return None
        error = (": ".join(filter(None, (out.get("ename"), out.get("evalue")))) or "an error").splitlines()[0]
        if out.get("ename") == "MemoryError":
            error += f" (over the limit of {limits.memory_bytes / 2**30:.0f} GiB a process, --memory)"
        return f"crashed in {claims.cell_name(cell, i)}: {error}"
    if ended.returncode != 0:
        last = (log.read_text(errors="replace").strip().splitlines() or [""])[-1]
        if "DeadKernelError" in last:
            return (
                f"ended when its kernel was killed (over {limits.memory_bytes / 2**30:.0f} GiB of memory a "
                f"process, past {limits.cpu_seconds} s of CPU time, or by itself)"
            )
        return f"ended with papermill's exit status {ended.returncode} ({last[:120]})"
    return None


def judge(job, nb, ended, limits, metrics_file: Path, log: Path) -> dict:
    """The row's results: reproduced, its first difference, the model, its parameter count, and the target."""
    result = {"runs_on": job["kind"] or "(no runs on line)"}
    metrics = fixed_keys(read(metrics_file) or {})
    printed = claims.parameter_count(nb)  # a run that crashed after building its model printed its size
    model, params = metrics.get("model") or printed[0], metrics.get("params") or printed[1]
    if model:
        result.update(model=model, params=params, budget=MODELS[model].max_params if model in MODELS else None)
    if metrics.get("history"):
        result["history"] = metrics["history"]
    if (crash := failure(nb, ended, limits, log)) is not None:
        return {**result, "reproduced": "no", "first_difference": f"the re-run {crash}", "target": "not run"}
    rerun_kind = claims.runs_on(nb)
    if job["kind"] is None:
        result.update(reproduced="not comparable", first_difference="the committed run names no machine kind")
    elif rerun_kind != job["kind"]:
        result.update(reproduced="not comparable", first_difference=f"the re-run runs on {rerun_kind}")
    else:
        difference = claims.first_difference(job["committed"], nb)
        result.update(reproduced="no" if difference else "yes", first_difference=difference or "")
    result["target"] = target(metrics)
    return result


def fixed_keys(metrics: dict) -> dict:
    """A fork from before the history's keys were fixed (2026-12-04) names them after the split (test_acc,
    val_loss): its rows read as today's (split, eval_acc, eval_loss)."""

    def row(h):
        if "eval_acc" in h:
            return h
        split = "val" if "val_acc" in h else "test"
        return {**h, "split": split, "eval_loss": h[f"{split}_loss"], "eval_acc": h[f"{split}_acc"]}

    return {**metrics, "history": [row(h) for h in metrics["history"]]} if metrics.get("history") else metrics


def target(metrics: dict) -> str:
    """The assignment's target (this repository's registry) on the re-run's history: met, missed, not a full run."""
    if not metrics.get("history"):
        return "not run"
    spec = MODELS.get(metrics.get("model"))
    if spec is None:
        return "unknown model"
    partial = [f"subset={metrics['subset']}"] if metrics.get("subset") else []
    partial += ["the validation split"] * bool(metrics.get("validation"))
    partial += [f"dataset={metrics['dataset']}"] * (metrics.get("dataset", "mnist") != "mnist")
    if partial:
        return f"not a full run ({', '.join(partial)})"
    return "met" if spec.target.met(metrics["history"]) else "missed"


def finish(job: dict, result: dict) -> dict:
    """The student's row, with its verdict and seconds (check-out and re-run); written to row.json in the student's
    folder."""
    row = {
        "student": job["student"],
        "repo": job["repo"],
        "commit": job.get("commit", "")[:8],
        "date": job.get("date", ""),
        "error": job.get("error", ""),
        **result,
        "seconds": round(job["seconds"], 1),
    }
    row["verdict"] = verdict(row)
    Path(job["folder"]).mkdir(parents=True, exist_ok=True)
    write_json(Path(job["folder"]) / "row.json", row)
    return row


def verdict(row: dict) -> str:
    """One line a teacher can paste into feedback."""
    if row["reproduced"] == "not run":
        return f"Not graded: {row['error']}."
    parts = []
    if row["reproduced"] == "yes":
        parts.append("Reproduced to the digit: every checked number in your notebook is what your code produces")
    elif row["reproduced"] == "no":
        parts.append(f"NOT reproduced ({row['first_difference']})")
    else:
        parts.append(f"Executed on {row['runs_on']}; {row['first_difference']}, so its numbers are not comparable")
    if row.get("params") and row.get("budget") and row["params"] >= row["budget"]:
        parts.append(f"{row['model']} has {row['params']:,} parameters, over its budget of < {row['budget']:,}")
    if row["target"] in ("met", "missed"):
        text = MODELS[row["model"]].target.text
        parts.append(f"the re-run {'meets' if row['target'] == 'met' else 'MISSES'} the target ({text})")
    elif row["target"].startswith("not a full run"):
        parts.append(f"{row['target']}: the target is for the full recipe run, not checked")
    return "; ".join(parts) + "."


def grade(entries, out: Path, before=None, limits=None, sandboxed=True, scheduler=None, cores=None, resume=False):
    """Every student of `entries` graded into `out`/<student>/, as Dask tasks: on a local cluster of this machine's
    `cores`, or at `scheduler`. Each run asks for as many cores as its threads, so runs never share a core.
    With `resume`, a student whose row.json is in `out` is kept. Then grades.csv, grades.md and grades.png."""
    out, limits = Path(out).resolve(), limits or sandbox.Limits()
    rows, jobs = {}, []
    for entry in entries:
        folder = out / entry["name"]
        if resume and (kept := read(folder / "row.json")) is not None:
            rows[entry["name"]] = kept
            print(f"{entry['name']}: kept from before", flush=True)
        else:
            try:
                jobs.append(plan(entry, folder, before))
            except Exception as err:  # a repository the grader cannot read: this row only
                error = f"the grader failed on this repository: {first_line(err)}"
                jobs.append({"student": entry["name"], "repo": entry.get("repo", ""), "folder": str(folder),
                             "error": error, "seconds": 0.0})  # fmt: skip
    if jobs:
        data = prepare_data()  # checked once here; the runs read it, read-only
        cores = cores or os.cpu_count() or 1
        with dask_client(1, scheduler, threads=cores, resources={"cores": cores}) as client:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise GradeError(f"no Dask worker joined the scheduler at {scheduler} within 60 s") from None
            workers = client.scheduler_info()["workers"].values()
            have = max(w.get("resources", {}).get("cores", 0) for w in workers)
            if not have:
                raise GradeError(
                    f"the Dask workers at {scheduler} declare no cores resource: start each with "
                    "`dask worker ADDRESS --nthreads N --resources cores=N`"
                )
            futures = {
                client.submit(
                    rerun,
                    job,
                    limits,
                    data,
                    sandboxed,
                    key=f"grade-{job['student']}",
                    pure=False,
                    resources={"cores": min(job.get("threads", 1), have)},
                ): job
                for job in jobs
            }
            for future in as_completed(futures):
                try:
                    row = future.result()
                except Exception as err:  # the grader's own fault (a full disk, a killed worker): this row only
                    job = {**futures[future], "error": f"the grader failed: {first_line(err)}; rerun with --resume"}
                    row = finish(job, {"reproduced": "not run", "target": "not run"})
                print(
                    f"{row['student']}: reproduced {row['reproduced']}, target {row['target']} "
                    f"({row['seconds']:.0f} s)",
                    flush=True,
                )
                rows[row["student"]] = row
    rows = [rows[e["name"]] for e in entries]
    write_grades(rows, out)
    return rows


def write_grades(rows: list[dict], out: Path) -> None:
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "grades.csv", lambda p: p.write_text(table.getvalue()))
    lines = [
        "| student | commit | model | params (budget) | reproduced | first difference | target | seconds |",
        "|---|---|---|---:|---|---|---|---:|",
    ]
    for r in rows:
        params = f"{r['params']:,} (< {r['budget']:,})" if r.get("params") and r.get("budget") else "–"
        lines.append(
            f"| {r['student']} | {r['commit'] or '–'} | {r.get('model') or '–'} | {params} | "
            f"{r['reproduced']} | {r.get('first_difference') or r['error'] or ''} | {r['target']} | "
            f"{r['seconds']:.0f} |"
        )
    lines += ["", "Verdicts:", ""] + [f"- **{r['student']}**: {r['verdict']}" for r in rows]
    atomic_write(out / "grades.md", lambda p: p.write_text("\n".join(lines) + "\n"))
    plot_class(rows, out / "grades.png")


COLOURS = {"yes": "tab:green", "no": "tab:red", "not comparable": "tab:grey", "not run": "tab:grey"}


def plot_class(rows: list[dict], path: Path) -> None:
    """Left: each student's re-run accuracy per epoch against the target's bar. Right: each student's target measure
    on the re-run, coloured by whether the committed numbers were reproduced (hollow: not a full run), and why a
    student has none."""
    fig, (curves, students) = plt.subplots(
        1, 2, figsize=(14, 1.5 + 0.45 * max(8, len(rows))), width_ratios=(3, 2), layout="constrained"
    )
    bars, measures = set(), []
    for y, r in enumerate(rows):
        spec = MODELS.get(r.get("model"))
        if not r.get("history") or spec is None:
            why = f"{r['reproduced']}: {r.get('first_difference') or r['error']}"
            students.annotate(why[:75], (0.01, y), xycoords=("axes fraction", "data"), fontsize=8, va="center")
            continue
        accs = [100 * a for a in accuracies(r["history"])]
        full = r["target"] in ("met", "missed")
        colour = COLOURS[r["reproduced"]]
        curves.plot(range(1, len(accs) + 1), accs, marker="o", ms=3, ls="-" if full else ":", label=r["student"])
        measures.append(100 * spec.target.measure(r["history"]))
        students.scatter(measures[-1], y, s=60, color=colour,
                         facecolor=colour if full else "none", zorder=3)  # fmt: skip
        bars.add(100 * spec.target.bar)
    for bar in bars:
        curves.axhline(bar, color="k", ls="--", lw=1)
        students.axvline(bar, color="k", ls="--", lw=1)
    curves.set(xlabel="epoch", ylabel="accuracy of the re-run (%)", title="Each student's re-run, per epoch")
    curves.xaxis.get_major_locator().set_params(integer=True)
    curves.grid(alpha=0.3)
    if curves.lines:
        curves.legend(fontsize=8, loc="best")
    students.set(yticks=range(len(rows)), yticklabels=[r["student"] for r in rows], ylim=(len(rows) - 0.5, -0.5),
                 xlabel="the target's measure on the re-run (%), dashed: its bar",
                 title="Reproduced: green yes, red no, grey not comparable\n"
                       "hollow: not a full run (target not checked)")  # fmt: skip
    lowest = min(measures + list(bars), default=0)
    students.set_xlim(max(0, lowest - 0.1 * (100 - lowest) - 0.2), 100.05)  # accuracies end at 100%
    students.title.set_fontsize(10)
    students.grid(alpha=0.3, axis="x")
    save_figure(fig, path)


def main(argv=None) -> list[dict]:
    parser = ArgumentParser(prog="python -m runner.grade", description=__doc__.splitlines()[0])
    parser.add_argument("classfile", type=Path, help="YAML: students: a list of {name, repo, ref}")
    parser.add_argument("--before", metavar="DATE", help="deadline: each repository's last commit before it (ISO)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="default: grades/<timestamp>/")
    parser.add_argument("--resume", type=Path, metavar="DIR", help="continue in DIR: keep the students graded there")
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help="a Dask cluster (tcp://HOST:8786) instead of this machine"
    )
    parser.add_argument("--cores", type=int, metavar="N", help="cores of this machine to use (default: all)")
    parser.add_argument(
        "--timeout", type=float, default=1800, metavar="SECONDS", help="wall seconds per student's run (default 1800)"
    )
    parser.add_argument(
        "--memory", type=float, default=8, metavar="GIB", help="GiB of memory per process of a run (default 8)"
    )
    parser.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="run students' code WITHOUT a sandbox where bwrap is missing: only for code you trust",
    )
    args = parser.parse_args(argv)
    if args.before:
        try:
            args.before = datetime.datetime.fromisoformat(args.before).isoformat()
        except ValueError:
            parser.error(f"--before {args.before}: expected a date such as 2026-12-01 or 2026-12-01T23:59")
    if args.cores is not None and args.cores < 1:
        parser.error(f"--cores {args.cores}: expected an integer >= 1")
    if args.timeout <= 0 or args.memory <= 0:
        parser.error("--timeout and --memory must be > 0")
    if args.resume and args.out:
        parser.error("--resume DIR continues in DIR; leave out --out")
    if args.resume and not args.resume.is_dir():
        parser.error(f"--resume {args.resume}: no such folder; give the folder of the grading to continue")
    sandboxed = True
    if (why := sandbox.why_not()) is not None:
        if not args.unsafe_no_sandbox:
            parser.exit(2, f"{parser.prog}: error: refusing to run students' code without a sandbox: {why}\n")
        print(f"WARNING: no sandbox ({why}): students' code runs with your rights", flush=True)
        sandboxed = False
    try:
        entries = read_class(args.classfile)
    except GradeError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    out = args.resume or args.out or make_output_dir(parent=REPO_ROOT / "grades")
    limits = sandbox.Limits(wall_seconds=args.timeout, memory_bytes=int(args.memory * 2**30))
    try:
        rows = grade(entries, out, args.before, limits, sandboxed, args.scheduler, args.cores, bool(args.resume))
    except GradeError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print("\n" + (Path(out) / "grades.md").read_text() + f"\ngrades.csv, grades.md, grades.png in {out}")
    return rows


if __name__ == "__main__":
    main()
