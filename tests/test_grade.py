"""The teacher's grader on a class made here from this repository: honest forks with small committed runs (one run
by papermill, one by hand with other parameters and a later commit past the deadline), a printed number changed, a
GPU's run, a model over its budget, a crash, a killed kernel, a hang, an escape attempt (a teacher's file, a folder
of the teacher's, a network connection), and entries that cannot be graded."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from conftest import without_timings

from runner import claims, grade, sandbox

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grade")]  # one class, graded once

REPO = Path(__file__).resolve().parents[1]
SMALL = {"subset": 500, "epochs": 3, "batch_size": 100, "device": "cpu"}
FORK_FILES = ("utils", "recipes", "notebooks/03_training.ipynb")
BEFORE, AFTER, DEADLINE = "2026-11-30T12:00:00", "2026-12-02T12:00:00", "2026-12-01T00:00:00"
TIMEOUT = 60  # wall seconds a student's run may take in this test: the hang's limit (a small run: 15-20 s alone)
INIT = (REPO / "utils" / "__init__.py").read_text()


def fork(root: Path, name: str, change=None) -> Path:
    """A git repository of this checkout's utils, recipes and 03 as the working tree has them, `change`d."""
    path = root / name
    for rel in FORK_FILES:
        source, copy = REPO / rel, path / rel
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy)
    if change:
        change(path)
    commit(path, "the assignment")
    return path


def commit(path: Path, message: str, notebook: dict | None = None, date: str = BEFORE) -> None:
    """Commit the fork's tree (with `notebook` as its 03) at `date`."""
    if notebook is not None:
        (path / "notebooks" / "03_training.ipynb").write_text(json.dumps(notebook, indent=1))
    env = {**os.environ, "GIT_AUTHOR_NAME": "s", "GIT_AUTHOR_EMAIL": "s@example.org", "GIT_COMMITTER_NAME": "s",
           "GIT_COMMITTER_EMAIL": "s@example.org", "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}  # fmt: skip
    if not (path / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", message], check=True, env=env)


def execute(path: Path, parameters: dict | None, out: Path) -> dict:
    """The fork's 03 executed through its own utils on one thread, as a student commits it: by papermill with
    `parameters`, or (None) by hand, its parameters cell as it stands (nbconvert: no papermill record)."""
    env = {**os.environ, "PYTHONPATH": str(path), "TQDM_DISABLE": "1", "RUNS_DIR": str(out)}
    env.update(dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), "1"))
    source, executed = path / "notebooks" / "03_training.ipynb", out / f"{path.name}.ipynb"
    if parameters is not None:
        args = [x for k, v in {**parameters, "output_dir": str(out / path.name)}.items() for x in ("-p", k, str(v))]
        command = [sys.executable, "-m", "papermill", str(source), str(executed), *args, "--cwd", str(source.parent)]
    else:
        command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", str(source),
                   "--output", str(executed)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(executed.read_text())


def by_hand(path: Path) -> None:
    """The small run's size, another seed and another peak lr typed into the parameters cell."""
    file = path / "notebooks" / "03_training.ipynb"
    nb = json.loads(file.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    source = "".join(cell["source"])
    for name, value in {**SMALL, "seed": 2, "lr": 0.05}.items():
        source, n = re.subn(
            rf"^({name}: [^=]+= )[^#\n]*?( *#.*)?$", rf"\g<1>{value!r}\g<2>", source, count=1, flags=re.M
        )
        assert n == 1, name
    cell["source"] = source
    file.write_text(json.dumps(nb, indent=1))


def without_outputs(path: Path) -> None:
    """03 as nbstripout leaves it: no outputs."""
    file = path / "notebooks" / "03_training.ipynb"
    nb = json.loads(file.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    file.write_text(json.dumps(nb, indent=1))


def edit(path: Path, file: str, old: str, new: str) -> None:
    text = (path / file).read_text()
    assert old in text, (file, old)
    (path / file).write_text(text.replace(old, new, 1))


def tamper(nb: dict) -> tuple[dict, str, str]:
    """The notebook with epoch 2's test accuracy printed 0.01 points higher; and the two values."""
    nb = json.loads(json.dumps(nb))
    cell = next(c for c in nb["cells"] if "history = fit(" in "".join(c["source"]))
    out = next(o for o in cell["outputs"] if "epoch 2/" in "".join(o.get("text", "")))
    text = "".join(out["text"])
    line = next(line for line in text.splitlines() if line.startswith("epoch 2/"))
    acc = re.search(r"test loss \S+ acc (\d+\.\d\d)%", line)
    new = f"{float(acc.group(1)) + 0.01:.2f}"
    out["text"] = text.replace(line, line[: acc.start(1)] + new + line[acc.end(1) :])
    return nb, acc.group(1), new


def restore_during_the_run(honest: dict):
    """utils that, on import, write the honest notebook over the fork's committed one: were the committed notebook
    read after the run, the changed number would go unseen."""
    code = (
        "\nimport pathlib as _pathlib\n_here = _pathlib.Path(__file__).parent\n"
        "(_here.parent / 'notebooks' / '03_training.ipynb').write_text((_here / 'honest.json').read_text())\n"
    )

    def change(path: Path) -> None:
        (path / "utils" / "honest.json").write_text(json.dumps(honest))
        (path / "utils" / "__init__.py").write_text(INIT + code)

    return change


def on_a_gpu(nb: dict) -> dict:
    """The notebook with the "runs on" line a Colab GPU run prints."""
    kind = claims.runs_on(nb)
    return json.loads(json.dumps(nb).replace(f"runs on {kind}", "runs on cuda (Tesla T4), 1 thread, torch 2.14.1"))


def escape(secret: Path, port: int):
    """utils that, on import, try to reach the teacher's port, to write beside the teacher's file, then read it."""
    code = f"""
import pathlib as _pathlib, socket as _socket
try:
    _socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    print("escape: connected")
except OSError as _err:
    print("escape: no connection", _err)
try:
    _pathlib.Path({str(secret.parent / "written-by-a-student")!r}).write_text("x")
except OSError as _err:
    print("escape: cannot write", _err)
print("escape:", _pathlib.Path({str(secret)!r}).read_text())
"""
    return lambda path: (path / "utils" / "__init__.py").write_text((path / "utils" / "__init__.py").read_text() + code)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A class of 12 entries graded on a local Dask cluster: (rows by student, the output folder, the secret file,
    what the escape's connection reached, the tampered values)."""
    why = sandbox.why_not()
    if why is not None and (shutil.which("bwrap") is None or os.geteuid() != 0):  # as root, a broken sandbox fails
        pytest.skip(f"no sandbox: {why}")  # no bwrap, or a kernel that keeps unprivileged users from namespaces
    root = tmp_path_factory.mktemp("class")
    runs = tmp_path_factory.mktemp("students-runs")
    secret = tmp_path_factory.mktemp("teacher") / "secret.txt"
    secret.write_text("TEACHER-SECRET-4711\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)

    honest = fork(root, "honest")
    hand = fork(root, "by_hand", by_hand)
    wide = fork(root, "over_budget", lambda p: edit(p, "utils/models.py", "(16, 16),  # 7x7", "(16, 24),  # 7x7"))
    edit(wide, "utils/models.py", "(16, 16),  # 5x5", "(24, 16),  # 5x5")
    with ThreadPoolExecutor(2) as pool:  # two one-thread runs at a time
        committed, by_hand_run, wide_run = pool.map(execute, (honest, hand, wide), (SMALL, None, SMALL), [runs] * 3)
    commit(honest, "executed", committed)
    commit(hand, "executed by hand", by_hand_run)
    commit(hand, "changed after the deadline", tamper(by_hand_run)[0], AFTER)
    commit(wide, "wider", wide_run)
    tampered, was, printed = tamper(committed)
    commit(fork(root, "tampered", restore_during_the_run(committed)), "executed", tampered)
    commit(fork(root, "gpu"), "executed on Colab", on_a_gpu(committed))
    step = "    amp_dtype = torch.float16"
    crash = fork(root, "crash", lambda p: edit(p, "utils/engine.py", step, '    raise ValueError("a bug")\n' + step))
    commit(crash, "executed", committed)
    hang = fork(root, "hang", lambda p: edit(p, "utils/engine.py", step, '    __import__("time").sleep(3600)\n' + step))
    commit(hang, "executed", committed)
    commit(fork(root, "escape", escape(secret, listener.getsockname()[1])), "executed", committed)
    kill = "\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would\n"
    killed = fork(root, "killed", lambda p: (p / "utils" / "__init__.py").write_text(INIT + kill))
    commit(killed, "executed", committed)
    fork(root, "unexecuted", without_outputs)
    students = [{"name": name, "repo": str(root / name)} for name in ("honest", "by_hand", "tampered", "gpu",
                "over_budget", "crash", "hang", "escape", "killed", "unexecuted")]  # fmt: skip
    students += [{"name": "gone", "repo": str(root / "no-such-fork")}, {"name": "norepo"}]
    classfile = root / "class.yaml"
    classfile.write_text(yaml.safe_dump({"students": students}))
    out = root / "grades"
    rows = grade.main([str(classfile), "--out", str(out), "--before", DEADLINE, "--timeout", str(TIMEOUT),
                       "--cores", "2"])  # fmt: skip
    try:
        reached = listener.accept()[0] is not None
    except BlockingIOError:
        reached = False
    listener.close()
    yield {r["student"]: r for r in rows}, out, secret, reached, (was, printed)


def test_honest_forks_are_reproduced_to_the_digit(graded):
    rows, out, *_ = graded
    for name in ("honest", "by_hand"):
        row = rows[name]
        assert (row["reproduced"], row["first_difference"], row["model"], row["params"]) == ("yes", "", "s7", 7578)
        assert row["target"] == "not a full run (subset=500)" and "Reproduced to the digit" in row["verdict"]
        assert (out / name / "03_training.html").stat().st_size > 10_000 and (out / name / "run.log").exists()
    by_hand = json.loads((out / "by_hand" / "work" / "run" / "metrics.json").read_text())
    assert (by_hand["seed"], by_hand["lr"]) == (2, 0.05)  # its parameters cell's, with no papermill record
    assert rows["by_hand"]["history"] != rows["honest"]["history"]


def test_the_deadline_picks_the_last_commit_before_it(graded):
    rows, out, *_ = graded
    log = subprocess.run(["git", "-C", str(out / "by_hand" / "work" / "repo"), "log", "--format=%h %s", "-1"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert log.split(maxsplit=1) == [rows["by_hand"]["commit"][: len(log.split()[0])], "executed by hand\n"]


def test_a_changed_number_is_caught_at_its_epoch_even_if_the_run_rewrites_it(graded):
    rows, out, *_, (was, printed) = graded
    row = rows["tampered"]
    assert row["reproduced"] == "no"
    assert f"epoch 2/3, test acc: committed {printed}%, re-run {was}%" in row["first_difference"]
    assert row["verdict"].startswith("NOT reproduced (cell [")
    rewritten = json.loads((out / "tampered" / "work" / "repo" / "notebooks" / "03_training.ipynb").read_text())
    assert claims.first_difference(rewritten, json.loads((out / "tampered" / "03_training.ipynb").read_text())) is None


def test_another_machine_kind_is_not_compared_but_its_target_is_checked(graded):
    row = graded[0]["gpu"]
    assert row["reproduced"] == "not comparable" and "cuda (Tesla T4)" in row["verdict"]
    assert (
        row["first_difference"]
        == "the re-run runs on cpu, portable x86-64 AVX2 numerics, 1 thread, torch "
        + (row["first_difference"].rsplit("torch ", 1)[1])
    )
    assert row["target"] == "not a full run (subset=500)" and without_timings(row["history"]) == without_timings(
        graded[0]["honest"]["history"]
    )


def test_a_model_over_its_budget_is_counted_from_the_students_code(graded):
    row = graded[0]["over_budget"]
    assert (row["reproduced"], row["params"], row["budget"]) == ("yes", 9898, 8000)
    assert "s7 has 9,898 parameters, over its budget of < 8,000" in row["verdict"]


def test_a_crash_and_a_hang_are_rows_and_the_grading_goes_on(graded):
    rows = graded[0]
    assert rows["crash"]["reproduced"] == "no" and rows["crash"]["target"] == "not run"
    assert (rows["crash"]["model"], rows["crash"]["params"]) == ("s7", 7578)  # as its re-run printed before the crash
    assert re.fullmatch(r"the re-run crashed in cell \[\d+\]: ValueError: a bug", rows["crash"]["first_difference"])
    hang = rows["hang"]
    assert hang["first_difference"] == f"the re-run did not finish within its wall-time limit ({TIMEOUT} s): killed"
    assert TIMEOUT <= hang["seconds"] < TIMEOUT + 30
    leftover = subprocess.run(["pgrep", "-f", str(graded[1] / "hang")], capture_output=True, text=True).stdout
    assert leftover == ""  # every process of the hung run ended
    assert rows["killed"]["first_difference"] == (
        "the re-run ended when its kernel was killed (over 8 GiB of memory a process, past 120 s of CPU time, or by "
        "itself)"
    )


def test_an_escape_reads_nothing_of_the_teachers_and_reaches_nothing(graded):
    rows, out, secret, reached, _ = graded
    row = rows["escape"]
    assert row["reproduced"] == "no"
    assert f"FileNotFoundError: [Errno 2] No such file or directory: '{secret}'" in row["first_difference"]
    assert not reached and not (secret.parent / "written-by-a-student").exists()
    log = (out / "escape" / "run.log").read_text()
    assert "escape: no connection" in log and "escape: cannot write" in log
    everything = [p for p in out.rglob("*") if p.is_file() and ".git" not in p.parts]
    assert not [p for p in everything if b"TEACHER-SECRET-4711" in p.read_bytes()]


def test_entries_that_cannot_be_graded_are_one_line_each(graded):
    rows = graded[0]
    assert rows["unexecuted"]["verdict"] == (
        "Not graded: notebooks/03_training.ipynb is committed without outputs: execute it, then commit it with them."
    )
    assert rows["gone"]["error"].startswith("cannot check out ") and rows["gone"]["reproduced"] == "not run"
    assert rows["norepo"]["error"] == "class file entry 12 (norepo) has no repo (a git URL or a local path)"


def test_the_class_report(graded):
    rows, out, *_ = graded
    table = (out / "grades.csv").read_text().splitlines()
    assert table[0] == (
        "student,commit,date,model,params,budget,reproduced,first_difference,target,verdict,seconds,runs_on,repo,error"
    )
    assert [line.split(",")[0] for line in table[1:]] == list(rows)
    md = (out / "grades.md").read_text()
    assert len([line for line in md.splitlines() if line.startswith("| ")]) == len(rows) + 1
    assert md.count("\n- **") == len(rows)
    assert (out / "grades.png").stat().st_size > 20_000


def test_resume_keeps_graded_students(graded, tmp_path):
    rows, out, *_ = graded
    shutil.copytree(out / "honest", tmp_path / "grades" / "honest", symlinks=True)
    classfile = tmp_path / "class.yaml"
    classfile.write_text(yaml.safe_dump({"students": [{"name": "honest", "repo": "unused"}]}))
    again = grade.main([str(classfile), "--resume", str(tmp_path / "grades")])
    assert again == [rows["honest"]] and (tmp_path / "grades" / "grades.md").exists()
