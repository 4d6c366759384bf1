"""The grader's inputs, without a re-run: class files (each problem one line, in its student's row or for the whole
file), its command line, what a committed notebook claims as its reader sees it, and no student code without a
sandbox."""

import json
import subprocess

import pytest
import yaml

from runner import claims, grade

EPOCH_LINE = "epoch 2/3: train loss 1.9779 acc 40.00% | test loss 2.2415 acc 17.20% | lr 0.0854 | 0.9 s"


def run_main(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        grade.main([str(a) for a in args])
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "text,message",
    [
        ("students: [", "is not valid YAML"),
        ("teachers: []", "needs `students:`, a list of entries with name, repo and optionally ref"),
        ("students: []", "needs `students:`"),
        ("- alice", "needs `students:`"),
    ],
)
def test_a_class_file_that_is_no_class_is_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "class.yaml"
    path.write_text(text)
    code, err = run_main(capsys, path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_missing_class_file_is_one_line(tmp_path, capsys):
    code, err = run_main(capsys, tmp_path / "nope.yaml")
    assert (
        code == 2
        and err == f"python -m runner.grade: error: cannot read {tmp_path / 'nope.yaml'} (No such file or directory)\n"
    )


def test_each_bad_entry_is_its_students_row_and_the_others_are_read(tmp_path):
    path = tmp_path / "class.yaml"
    students = [
        {"name": "ok", "repo": "/somewhere", "ref": "main"},
        "bob",
        {"name": "typo", "repo": "/x", "branch": "main"},
        {"name": "../up", "repo": "/x"},
        {"name": "ok", "repo": "/y"},
        {"name": "norepo"},
        {"name": "badref", "repo": "/x", "ref": 3},
    ]
    path.write_text(yaml.safe_dump({"students": students}))
    assert grade.read_class(path) == [
        {"name": "ok", "repo": "/somewhere", "ref": "main"},
        {"name": "entry-2", "error": "class file entry 2 is not a mapping of name, repo and ref"},
        {"name": "typo", "error": "class file entry 3 has unknown keys branch (name, repo, ref)"},
        {
            "name": "entry-4",
            "error": "class file entry 4: name '../up' must be letters, digits, '.', '_' or '-' (it names a folder)",
        },
        {"name": "entry-5", "error": "class file entry 5: a second student named ok"},
        {"name": "norepo", "error": "class file entry 6 (norepo) has no repo (a git URL or a local path)"},
        {"name": "badref", "error": "class file entry 7 (badref): ref must be a branch, tag or commit"},
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--before", "next friday"], "--before next friday: expected a date such as 2026-12-01 or 2026-12-01T23:59"),
        (["--cores", "0"], "--cores 0: expected an integer >= 1"),
        (["--timeout", "0"], "--timeout and --memory must be > 0"),
        (["--resume", "no-such-folder"], "--resume no-such-folder: no such folder"),
    ],
)
def test_a_bad_command_line_is_one_line(tmp_path, capsys, args, message):
    (tmp_path / "class.yaml").write_text("students: [{name: a, repo: /x}]")
    code, err = run_main(capsys, tmp_path / "class.yaml", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_no_students_code_runs_without_a_sandbox_unless_the_teacher_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    (tmp_path / "class.yaml").write_text("students: [{name: a, repo: /x}]")
    code, err = run_main(capsys, tmp_path / "class.yaml", "--out", tmp_path / "grades")
    assert code == 2 and err == (
        "python -m runner.grade: error: refusing to run students' code without a sandbox: no bwrap on PATH: "
        "install Debian's or Ubuntu's bubblewrap (`apt-get install bubblewrap`)\n"
    )
    assert not (tmp_path / "grades").exists()


def notebook(*cells, metadata=None) -> dict:
    return {"cells": list(cells), "metadata": metadata or {}}


def code(source: str, *outputs, tags=()) -> dict:
    return {"cell_type": "code", "source": source, "outputs": list(outputs), "metadata": {"tags": list(tags)}}


def stdout(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def test_outputs_are_compared_as_a_reader_sees_them():
    cell = code(
        "# NBVAL_CHECK_OUTPUT\nfit()",
        stdout("train:  50%|#####     | 469/938\r" + " " * 60 + "\r" + EPOCH_LINE[:40]),
        stdout(EPOCH_LINE[40:] + "\n\x1b[31mdone\x1b[0m\n"),
        {"output_type": "stream", "name": "stderr", "text": "UserWarning: something\n"},
        {"output_type": "display_data", "data": {"image/png": "..."}},
        {"output_type": "execute_result", "data": {"text/plain": ["(0.5,\n", " 0.25)"]}},  # lines, as on disk
    )
    assert claims.visible_text(cell) == EPOCH_LINE + "\ndone\n(0.5,\n 0.25)\n"
    seconds = EPOCH_LINE.replace("| 0.9 s", "| SECONDS")
    assert claims.sanitized(claims.visible_text(cell)) == [seconds, "done", "(0.5,", " 0.25)"]


def test_the_first_difference_names_cell_epoch_and_value():
    def run(line):
        return notebook(code("# NBVAL_CHECK_OUTPUT\nprint(n)", stdout("s7: 7,578 parameters\n")),
                        {**code("# NBVAL_CHECK_OUTPUT\nfit()", stdout(line + "\n")), "execution_count": 9})  # fmt: skip

    committed = run(EPOCH_LINE)
    assert claims.first_difference(committed, run(EPOCH_LINE.replace("0.9 s", "1.4 s"))) is None  # seconds differ
    assert claims.first_difference(committed, run(EPOCH_LINE.replace("17.20", "17.30"))) == (
        "cell [9], epoch 2/3, test acc: committed 17.20%, re-run 17.30%"
    )
    assert claims.first_difference(committed, run(EPOCH_LINE.replace("1.9779", "1.9780"))) == (
        "cell [9], epoch 2/3, train loss: committed 1.9779, re-run 1.9780"
    )
    unmarked = notebook(code("fit()", stdout(EPOCH_LINE + "\n")))
    assert claims.first_difference(unmarked, unmarked) == (
        "no cell that prints the epoch lines is marked NBVAL_CHECK_OUTPUT: nothing to compare"
    )


def test_the_parameters_are_papermills_only_where_its_cell_is_there():
    record = {"papermill": {"parameters": {"seed": 3, "output_dir": "/content/drive/x", "subset": 500}}}
    injected = code("# Parameters\nseed = 3\n", tags=["injected-parameters"])
    assert claims.parameters(notebook(injected, metadata=record)) == {"seed": 3, "subset": 500}
    assert claims.parameters(notebook(code("seed: int = 4"), metadata=record)) == {}  # re-run by hand since


def test_the_runs_on_line_gives_the_thread_count():
    nb = notebook(code("print(runs_on(device))", stdout("runs on cpu, portable x86-64 AVX2 numerics, 1 thread, "
                                                         "torch 2.14.1+cu130\n")))  # fmt: skip
    assert claims.runs_on(nb) == "cpu, portable x86-64 AVX2 numerics, 1 thread, torch 2.14.1+cu130"
    assert claims.threads(claims.runs_on(nb)) == 1
    assert claims.threads("cpu (GenuineIntel 6/143 Xeon, AVX512), 4 threads, torch 2.14.1") == 4
    assert claims.threads(None) == 2


@pytest.mark.parametrize(
    "files,message",
    [
        ({"README.md": "x"}, "no notebooks/03_training.ipynb at commit {commit}"),
        ({"notebooks/03_training.ipynb": "{not json"},
         "notebooks/03_training.ipynb at commit {commit} is not a readable notebook"),
        ({"notebooks/03_training.ipynb": json.dumps(notebook(code("fit()")))},
         "notebooks/03_training.ipynb is committed without outputs: execute it, then commit it with them"),
    ],
)  # fmt: skip
def test_a_notebook_that_cannot_be_graded_is_one_line(tmp_path, files, message):
    repo = tmp_path / "fork"
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    identity = ["-c", "user.name=s", "-c", "user.email=s@example.org"]
    subprocess.run(["git", "-C", str(repo), *identity, "commit", "-qm", "work"], check=True)
    job = grade.plan({"name": "f", "repo": str(repo)}, tmp_path / "out" / "f", None)
    assert job["error"] == message.format(commit=job.get("commit", "")[:8])


def test_a_deadline_before_every_commit_and_an_unknown_ref_are_one_line(tmp_path):
    repo = tmp_path / "fork"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    identity = ["-c", "user.name=s", "-c", "user.email=s@example.org"]
    subprocess.run(["git", "-C", str(repo), *identity, "commit", "-q", "--allow-empty", "-m", "work"], check=True)
    job = grade.plan({"name": "f", "repo": str(repo)}, tmp_path / "out" / "f", "2001-01-01T00:00:00")
    assert job["error"] == f"cannot check out {repo}: no commit of HEAD before 2001-01-01T00:00:00"
    job = grade.plan({"name": "f", "repo": str(repo), "ref": "submission"}, tmp_path / "out" / "f", None)
    assert job["error"] == f"cannot check out {repo}: no branch, tag or commit submission in {repo}"


def test_a_dask_cluster_whose_workers_declare_no_cores_is_one_line(tmp_path, capsys):
    from dask.distributed import LocalCluster

    (tmp_path / "class.yaml").write_text("students: [{name: a}]")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        code, err = run_main(capsys, tmp_path / "class.yaml", "--scheduler", cluster.scheduler_address,
                             "--out", tmp_path / "grades")  # fmt: skip
    assert code == 2 and err == (
        f"python -m runner.grade: error: the Dask workers at {cluster.scheduler_address} declare no cores resource: "
        "start each with `dask worker ADDRESS --nthreads N --resources cores=N`\n"
    )


def test_a_repository_the_grader_trips_on_is_its_row_and_the_class_goes_on(tmp_path, monkeypatch):
    real_plan = grade.plan

    def plan(entry, folder, before):
        if entry["name"] == "odd":
            raise TypeError("can only concatenate list (not 'str') to list")
        return real_plan(entry, folder, before)

    monkeypatch.setattr(grade, "plan", plan)
    entries = [{"name": "odd", "repo": "/x"}, {"name": "norepo", "error": "class file entry 2 (norepo) has no repo"}]
    rows = grade.grade(entries, tmp_path / "grades", cores=1)
    assert [(r["student"], r["reproduced"], r["error"]) for r in rows] == [
        (
            "odd",
            "not run",
            "the grader failed on this repository: TypeError: can only concatenate list (not 'str') to list",
        ),
        ("norepo", "not run", "class file entry 2 (norepo) has no repo"),
    ]
    assert (tmp_path / "grades" / "grades.md").exists()


def test_a_fork_from_before_the_history_had_fixed_keys_is_still_judged():
    accs = [0.99] * 12 + [0.995] * 3
    history = [dict(epoch=e, train_acc=0.99, test_loss=0.02, test_acc=a) for e, a in enumerate(accs, 1)]
    old = dict(model="s7", subset=None, validation=False, dataset="mnist", history=history)
    assert grade.target(grade.fixed_keys(old)) == "met"
    history[-1]["test_acc"] = 0.993
    assert grade.target(grade.fixed_keys(old)) == "missed"
    assert grade.fixed_keys({}) == {}  # no run, nothing to read
