"""Where runs write (a folder of their own each), and which names a notebook's parameters may have."""

import threading
import time

from utils.config import ParameterError, check_names, make_output_dir, passed_names

import pytest

INJECTED = "# Parameters\nlearnig_rate = 0.05\nepochs = 2\nPAPERMILL_INPUT_PATH = 'in.ipynb'\n"


def test_runs_started_in_the_same_second_get_a_folder_each(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    monkeypatch.setattr(time, "strftime", lambda fmt: "20261130-120000")  # every run starts in the same second
    start, folders = threading.Barrier(6), []

    def new_run():
        start.wait()
        folders.append(make_output_dir())

    threads = [threading.Thread(target=new_run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(folders)) == 6  # none shared
    names = sorted(f.name for f in folders)
    assert names == ["20261130-120000", *(f"20261130-120000-{n}" for n in range(2, 7))]
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_a_given_output_dir_is_used_as_it_is(tmp_path):
    assert make_output_dir(tmp_path / "mine") == tmp_path / "mine"
    assert make_output_dir(tmp_path / "mine") == tmp_path / "mine"  # resume writes next to its checkpoint


def test_passed_names_are_read_from_papermills_injected_cell():
    assert passed_names({"In": ["", "import os", INJECTED, "x = 1"]}) == [
        "learnig_rate",
        "epochs",
        "PAPERMILL_INPUT_PATH",
    ]
    assert passed_names({"In": ["", "epochs = 2"]}) == []  # Jupyter without papermill: nothing was passed


@pytest.mark.parametrize(
    "given,message",
    [
        ("learnig_rate", "parameter learnig_rate is not a parameter of 03_training (did you mean lr?)"),
        ("batch", "parameter batch is not a parameter of 03_training (did you mean batch_size?)"),
        ("epoch", "parameter epoch is not a parameter of 03_training (did you mean epochs?)"),
        ("colour", "parameter colour is not a parameter of 03_training; its parameters: lr, epochs, batch_size"),
    ],
)
def test_a_name_the_notebook_does_not_declare_is_one_line_naming_the_closest(given, message):
    namespace = {
        "__annotations__": {"lr": float, "epochs": int, "batch_size": int},
        "In": [f"# Parameters\n{given} = 1\n"],
    }
    with pytest.raises(ParameterError) as err:
        check_names(namespace, "03_training")
    assert str(err.value) == message


def test_declared_names_and_papermills_own_pass():
    namespace = {"__annotations__": {"epochs": int}, "In": [INJECTED.replace("learnig_rate", "epochs")]}
    check_names(namespace, "03_training")  # epochs declared, PAPERMILL_INPUT_PATH is papermill's --inject-paths
