"""The portable CPU numerics (utils/numerics.py): the same weights to the bit on emulated CPUs of both vendors,
other weights without the pins; the switch, a late torch import, and the augmentation's kernels."""

import os
import shutil
import subprocess
import sys

from utils import numerics

import pytest

from runner import kinds

NO_EMULATOR = "no qemu-x86_64 (Debian's qemu-user: `make emulator` installs it as root)"
needs_emulator = pytest.mark.skipif(shutil.which(kinds.EMULATOR) is None or not numerics.X86_64, reason=NO_EMULATOR)
x86_64_only = pytest.mark.skipif(not numerics.X86_64, reason="the pins are for x86-64 CPUs")
SHORT_RUN = {"subset": 192, "epochs": 1, "clean_epochs": 0}  # 3 augmented steps (the fewest), the EMA, dropout
EVAL_IMAGES = 128  # an emulated CPU runs the AVX2 code about 1,000 times slower than this one


def trained(*children) -> list[dict]:
    """The short run in a process per (prefix, env): imported at the same time, then trained one after another."""
    results = kinds.run(list(children), SHORT_RUN, 1, EVAL_IMAGES)
    for result in results:
        del result["train_seconds"]
    return results


OFF = {numerics.SWITCH: "0"}  # then each CPU's own kernels: AVX-512 where there is, MKL's path for its vendor


@pytest.mark.slow
@pytest.mark.serial
@needs_emulator
def test_a_short_training_gives_the_same_weights_on_emulated_amd_and_intel_cpus_and_other_ones_without_the_pins():
    here, amd, intel, here_unpinned = trained(
        ([], None), (kinds.emulated(kinds.RUNNER_CPU), None), (kinds.emulated("Haswell"), None), ([], OFF)
    )
    assert here["kind"].startswith("cpu, portable x86-64 AVX2 numerics, 2 threads")
    assert amd == here  # GitHub's runners' AMD EPYC generation
    assert intel == here  # an Intel CPU with AVX2 and no AVX-512
    unpinned = [here_unpinned]
    if here_unpinned["weights"] == here["weights"]:  # no AVX-512 here: then the other vendor's MKL path differs
        unpinned += trained((kinds.emulated("Haswell"), OFF), (kinds.emulated(kinds.RUNNER_CPU), OFF))
    assert any(r["weights"] != here["weights"] for r in unpinned)


def python(code: str, **env) -> str:
    """`code` run by a new Python, with `env` added to this process's environment (which holds the pins), less its
    thread counts (make test's parallel half sets 1): the child sets its own default."""
    inherited = {k: v for k, v in os.environ.items() if k not in numerics.THREAD_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**inherited, **env}, check=True
    )
    return done.stdout.strip()


APPLY = "from utils import numerics; numerics.apply(); "  # what every program does first
RUNS_ON = "from utils.engine import runs_on; print(runs_on('cpu'))"


@x86_64_only
def test_the_switch_turns_the_pins_off_even_when_inherited_and_the_run_says_so():
    assert all(os.environ[k] == v for k, v in numerics.PINS.items())  # this process pins, its children inherit
    assert python(APPLY + RUNS_ON).startswith("runs on cpu, portable x86-64 AVX2 numerics, 2 threads, torch ")
    off = python(APPLY + RUNS_ON, PORTABLE_NUMERICS="0").splitlines()
    assert off[0].startswith(f"runs on cpu ({numerics.cpu_name()}, ") and "portable" not in off[0]
    assert off[1] == "not the portable numerics (PORTABLE_NUMERICS=0): these numbers hold on this CPU model only"
    assert "ATEN_CPU_CAPABILITY" not in python(APPLY + "import os; print(*os.environ)", PORTABLE_NUMERICS="0")


@x86_64_only
def test_torch_loaded_before_the_pins_or_without_them_is_named_in_the_run():
    env = {name: "" for name in numerics.PINS}  # as in a fresh Jupyter kernel
    first = python(f"import torch; {APPLY}{RUNS_ON}", **env).splitlines()
    assert "portable" not in first[0]
    assert first[1].startswith("not the portable numerics (torch was imported before utils.numerics.apply())")
    never = python(RUNS_ON, **env).splitlines()
    assert never[1].startswith("not the portable numerics (utils.numerics.apply() was not called before torch")
    assert "portable x86-64 AVX2 numerics" in python(f"{APPLY}import torch; {RUNS_ON}", **env)


def test_importing_utils_changes_nothing_in_the_process():
    code = "import os; before = dict(os.environ); import utils.engine, utils.config; print(dict(os.environ) == before)"
    assert python(code, **{name: "" for name in numerics.PINS}) == "True"


AUGMENTED = (
    APPLY + "import hashlib, torch; from utils.data import Augment, load_data; x = load_data()[0][:128, None] / 255; "
    "y = Augment(15.0, 0.15, erase=0.25)(x.float(), torch.Generator().manual_seed(3)); "
    "print(torch.backends.cpu.get_cpu_capability(), hashlib.sha256(y.numpy().tobytes()).hexdigest())"
)


@x86_64_only
def test_the_augmentation_gives_the_same_images_with_every_kernel(mnist_root):
    """Sampled in float64, torch's scalar, AVX2 and AVX-512 kernels agree, pins or not. (That qemu runs it, where
    the float32 AVX2 kernel trips qemu 7.2's VSIB decoding, tests/README.md, the emulated trainings above show.)"""
    off = {numerics.SWITCH: "0"}
    outputs = {
        python(AUGMENTED),  # AVX2
        python(AUGMENTED, **off),  # this CPU's best: AVX512 where it has it
        python(AUGMENTED, **off, ATEN_CPU_CAPABILITY="default"),
    }
    assert len({line.split()[0] for line in outputs}) >= 2  # more than one kernel ran...
    assert len({line.split()[1] for line in outputs}) == 1  # ...and they drew the same images


@pytest.mark.slow
@pytest.mark.serial
def test_make_kinds_trains_the_committed_runs_first_epoch_as_the_notebook_did(monkeypatch, tmp_path, mnist_root):
    """`make kinds`'s path, on this CPU instead of an emulated one (which takes 9 to 76 minutes, by the host): the
    notebook's steps with its defaults give the committed epoch-1 line; a line that differs is reported and fails."""
    monkeypatch.setattr(kinds, "emulated", lambda cpu: [])
    trained_once, run = [], kinds.run

    def run_once(*args):  # the second main compares the same training with a changed committed line
        if not trained_once:
            trained_once.append(run(*args))
        return trained_once[0]

    monkeypatch.setattr(kinds, "run", run_once)
    assert kinds.main(["--out", str(tmp_path / "same")])
    assert "EPYC-Milan (cpu, portable x86-64 AVX2 numerics" in (tmp_path / "same" / "kinds.md").read_text()
    committed = kinds.committed_lines()  # the same training, against a committed line changed by one digit
    monkeypatch.setattr(kinds, "committed_lines", lambda: [committed[0].replace("acc ", "acc 1", 1), *committed[1:]])
    assert not kinds.main(["--out", str(tmp_path / "other")])
    assert ": DIFFERENT" in (tmp_path / "other" / "kinds.md").read_text()


def test_make_kinds_without_the_emulator_ends_with_one_line_and_makes_no_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(kinds.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as stop:
        kinds.main(["--out", str(tmp_path / "kinds")])
    assert stop.value.code == 1 and not (tmp_path / "kinds").exists()
    fix = "install Debian's qemu-user (`make emulator` does, as root)"
    assert capsys.readouterr().err == f"python -m runner.kinds: no {kinds.EMULATOR} here: {fix}\n"


def test_a_child_that_fails_is_one_line_and_the_others_are_stopped_before_training(monkeypatch):
    started, popen = [], subprocess.Popen

    def start(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(kinds.subprocess, "Popen", start)
    with pytest.raises(kinds.UserError, match="^training under false failed: exit status 1$"):
        kinds.run([(["false"], None), ([], None)], SHORT_RUN, 1, EVAL_IMAGES)
    assert [p.returncode for p in started] == [1, -9]  # the second killed while it waited to train, and reaped
