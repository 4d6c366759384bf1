"""Bad training parameters: through `check_params`, the call 03_training.ipynb makes right after its parameters
cell, and where a value meets the machine (the device, the data, output and checkpoint paths) where it is used.
Each gives one line naming the parameter, its value and what is accepted, and nothing is written."""

from utils.checkpoints import LAST_CHECKPOINT, save_checkpoint
from utils.config import PARAMETERS, ParameterError, check_params, make_output_dir
from utils.data import load_data
from utils.datafiles import DataError
from utils.engine import build, resolve_device
from utils.history import ROW

import pytest
import torch

GOOD = dict(model="s7", epochs=2, batch_size=64, lr=0.05, optimizer="sgd", seed=1, device="cpu")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A resumable last.pt of GOOD's run after its first epoch, and a finished run's last.pt."""
    folder = tmp_path_factory.mktemp("checkpoints")
    for name, epochs in ((LAST_CHECKPOINT, 2), ("finished.pt", 1)):
        run = build(check_params({**GOOD, "epochs": epochs}), "cpu")
        run.history.append({**dict.fromkeys(ROW, 0.5), "epoch": 1, "split": "test"})
        save_checkpoint(folder / name, run)
    ckpt = torch.load(folder / LAST_CHECKPOINT, weights_only=True)
    del ckpt["params"]["scale"]  # as a checkpoint written before scale was a parameter
    torch.save(ckpt, folder / "old.pt")
    (folder / "junk.pt").write_bytes(b"not a checkpoint")
    return folder


def in_file(tmp_path):
    """A path below a regular file: it can never be created."""
    return str(tmp_path / "a_file" / "below")


BAD = [  # (change to GOOD, expected text)
    (dict(model="s99"), "parameter model='s99' is invalid: expected one of s5, s6, s7, s7_tiny"),
    (dict(dataset="cifar10"), "parameter dataset='cifar10' is invalid: expected one of mnist, fashion_mnist"),
    (dict(model=None), "parameter model=None is invalid: expected one of"),
    (dict(epochs=0), "parameter epochs=0 is invalid: expected an integer >= 1"),
    (dict(epochs=-3), "parameter epochs=-3 is invalid: expected an integer >= 1"),
    (dict(epochs=2.5), "parameter epochs=2.5 is invalid: expected an integer >= 1"),
    (dict(epochs="10"), "parameter epochs='10' is invalid: expected an integer >= 1"),
    (dict(batch_size=0), "parameter batch_size=0 is invalid: expected an integer in 1..60000"),
    (dict(batch_size=-64), "parameter batch_size=-64 is invalid"),
    (dict(batch_size=60_001), "parameter batch_size=60001 is invalid: expected an integer in 1..60000"),
    (dict(batch_size=500, subset=100), "parameter batch_size=500 is invalid: expected an integer in 1..100"),
    (dict(epochs=1, subset=100, batch_size=50), "parameter epochs=1 is invalid: expected at least 3 training steps"),
    (dict(lr=0), "parameter lr=0 is invalid: expected a finite number > 0"),
    (dict(lr=-1), "parameter lr=-1 is invalid: expected a finite number > 0"),
    (dict(lr=float("nan")), "parameter lr=nan is invalid: expected a finite number > 0"),
    (dict(lr=float("inf")), "parameter lr=inf is invalid: expected a finite number > 0"),
    (dict(lr="0.1"), "parameter lr='0.1' is invalid: expected a finite number > 0"),
    (dict(optimizer="rmsprop"), "parameter optimizer='rmsprop' is invalid: expected one of sgd, adam"),
    (dict(momentum=1.0), "parameter momentum=1.0 is invalid: expected None (OneCycle moves it) or a constant, 0 <"),
    (dict(momentum=0), "parameter momentum=0 is invalid: expected None (OneCycle moves it) or a constant"),
    (dict(clean_epochs=-1), "parameter clean_epochs=-1 is invalid: expected an integer >= 0 (the last epochs"),
    (dict(clean_epochs=1.5), "parameter clean_epochs=1.5 is invalid: expected an integer >= 0"),
    (dict(subset=0), "parameter subset=0 is invalid: expected None or an integer in 1..60000"),
    (dict(subset=70_000), "parameter subset=70000 is invalid: expected None or an integer in 1..60000"),
    (dict(lr_warmup=0), "parameter lr_warmup=0 is invalid: expected a fraction of the training steps, 0 < lr_warmup"),
    (dict(lr_warmup=1.5), "parameter lr_warmup=1.5 is invalid: expected a fraction of the training steps"),
    (dict(grad_clip=0), "parameter grad_clip=0 is invalid: expected None or a finite number > 0"),
    (dict(seed="one"), "parameter seed='one' is invalid: expected an integer"),
    (dict(rotation=-5), "parameter rotation=-5 is invalid: expected degrees, 0 <= rotation <= 180"),
    (dict(translate=0.7), "parameter translate=0.7 is invalid: expected a fraction of the image size"),
    (dict(scale=1), "parameter scale=1 is invalid: expected a fraction, 0 <= scale < 1 (zoom 1 ± scale)"),
    (dict(erase=2), "parameter erase=2 is invalid: expected a probability, 0 <= erase <= 1"),
    (dict(label_smoothing=1), "parameter label_smoothing=1 is invalid: expected a fraction, 0 <= label_smoothing < 1"),
    (dict(label_smoothing=-0.1), "parameter label_smoothing=-0.1 is invalid: expected a fraction"),
    (dict(dropout=1), "parameter dropout=1 is invalid: expected None (the model's own) or 0 <= dropout < 1"),
    (dict(dropout=0.1, model="s7_tiny"), "parameter dropout=0.1 is invalid: expected None (s7_tiny has no dropout"),
    (dict(ema=0), "parameter ema=0 is invalid: expected None or a decay per step, 0 < ema < 1"),
    (dict(ema=1.0), "parameter ema=1.0 is invalid: expected None or a decay per step, 0 < ema < 1"),
    (dict(ema="0.999"), "parameter ema='0.999' is invalid: expected None or a decay per step"),
    (dict(validation="yes"), "parameter validation='yes' is invalid: expected True (train on the first 50,000"),
    (dict(subset=55_000, validation=True), "subset=55000 is invalid: expected None or an integer in 1..50000"),
    (dict(device="tpu"), "parameter device='tpu' is invalid: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
]


def files_under(*folders):
    return {p for folder in folders for p in folder.rglob("*")}


@pytest.mark.parametrize("change,expected", BAD, ids=[f"{i}-{next(iter(c))}" for i, (c, _) in enumerate(BAD)])
def test_bad_value_is_one_clear_line(change, expected):
    with pytest.raises(ParameterError) as err:
        check_params({**GOOD, **change})
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert message.startswith(f"parameter {next(iter(change))}=")


RESUME = [  # (change to GOOD, the checkpoint to resume from, expected text)
    (dict(), "missing.pt", "missing.pt does not exist; give the path of a .pt file"),
    (dict(), "junk.pt", "junk.pt cannot be read"),
    (dict(epochs=1), "finished.pt", "it already has all 1 epochs"),
    (dict(lr=0.1), LAST_CHECKPOINT, "it differs in lr=0.05 there, 0.1 here"),
    (dict(model="s5"), LAST_CHECKPOINT, "it differs in model='s7' there, 's5' here"),
    (dict(ema=None), LAST_CHECKPOINT, "it differs in ema=0.999 there, None here"),
    (dict(scale=0.1), "old.pt", "it differs in scale=0.02 there, 0.1 here"),  # old.pt has no scale: its default
]


@pytest.mark.parametrize("change,name,expected", RESUME, ids=[r[2].split()[-1] for r in RESUME])
def test_a_checkpoint_that_cannot_be_resumed_stops_fit_before_any_work(checkpoints, change, name, expected):
    p = check_params({**GOOD, **change, "resume": str(checkpoints / name), "data_dir": "/no/data/here"})
    before = files_under(checkpoints)
    with pytest.raises(ParameterError) as err:  # not DataError: refused before the data is read
        build(p, "cpu")
    message = str(err.value)
    assert message.startswith(f"parameter resume='{checkpoints / name}' is invalid: expected ") and "\n" not in message
    assert expected in message
    assert files_under(checkpoints) == before


def test_paths_and_devices_this_machine_cannot_use_are_one_line_where_they_are_used(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("a file where a folder is expected")
    before = files_under(tmp_path)
    for output_dir in (tmp_path / "a_file", in_file(tmp_path)):
        with pytest.raises(
            ParameterError, match=r"^parameter output_dir='.*' is invalid: expected a folder path this "
        ):
            make_output_dir(check_params({**GOOD, "output_dir": str(output_dir)}).output_dir)
    with pytest.raises(DataError, match="give a data folder this user can write to$"):
        load_data(check_params({**GOOD, "data_dir": in_file(tmp_path)}).data_dir)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParameterError, match=r"^device='cuda' but CUDA is not available here; use device='auto'"):
        resolve_device(check_params({**GOOD, "device": "cuda"}).device)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("name", PARAMETERS)
def test_every_parameter_refuses_a_value_of_the_wrong_type(name):
    """Derived from TrainParams: a new parameter is covered here without a new line."""
    with pytest.raises(ParameterError, match=rf"^parameter {name}=\[0\] is invalid: expected "):
        check_params({**GOOD, name: [0]})


def test_good_parameters_pass_and_resume_writes_next_to_its_checkpoint(checkpoints):
    assert check_params(GOOD).output_dir is None
    assert build(check_params({**GOOD, "resume": str(checkpoints / "old.pt")}), "cpu").history[0]["epoch"] == 1
    assert check_params({**GOOD, "resume": str(checkpoints / LAST_CHECKPOINT)}).output_dir == str(checkpoints)
