from pathlib import Path

from utils.config import PARAMETERS, check_params
from utils.layers import receptive_field
from utils.models import (
    MODELS,
    Normalize,
    count_params,
    get_model,
    is_recipe_run,
    list_models,
    recipe,
)

import papermill as pm
import pytest
import torch
from torch import nn

NAMES = list_models()
TRAINING_NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_training.ipynb"


@pytest.mark.parametrize("name,budget", [("s5", 25_000), ("s6", 20_000), ("s7", 8_000), ("s7_tiny", 5_000)])
def test_parameter_budget(name, budget):
    assert count_params(get_model(name)) < budget
    assert MODELS[name].max_params == budget


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 64])
def test_28x28_in_10_logits_out(name, batch):
    assert get_model(name).eval()(torch.rand(batch, 1, 28, 28)).shape == (batch, 10)


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_nonzero_gradient(name):
    torch.manual_seed(0)
    model = get_model(name).train()
    loss = nn.functional.cross_entropy(model(torch.rand(16, 1, 28, 28)), torch.arange(16) % 10)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_normalisation_is_a_buffer_not_a_parameter():
    model = get_model("s7")
    norm = model[0]
    assert isinstance(norm, Normalize)
    assert {"0.mean", "0.std"} <= set(dict(model.named_buffers()))
    assert not any(name.startswith("0.") for name, _ in model.named_parameters())


def test_receptive_field_grows_with_convs_and_pooling():
    rows = receptive_field(get_model("s7"))
    convs = [r for r in rows if r["layer"] == "Conv2d"]
    assert [r["rf"] for r in convs] == [3, 8, 12, 16, 20]  # 3x3 convs add 2*jump; the 2x2 pool doubles jump
    assert rows[-1]["output"] == (10,)
    # mult-adds per image: output values x (input channels x 3 x 3); the linear layer: 16 x 10
    assert [r["macs"] for r in convs] == [
        8 * 26 * 26 * 9,
        12 * 11 * 11 * 72,
        16 * 9 * 9 * 108,
        16 * 49 * 144,
        16 * 25 * 144,
    ]
    assert rows[-1]["macs"] == 160 and sum(r["macs"] for r in rows[:-1]) == sum(r["macs"] for r in convs)


def _history(test_accs, train_acc=0.99, split="test"):
    return [dict(epoch=i + 1, split=split, train_acc=train_acc, eval_acc=a) for i, a in enumerate(test_accs)]


def target_met(name, history):
    return MODELS[name].target.met(history)


def test_targets_can_fail():
    assert target_met("s7", _history([0.99] * 12 + [0.994, 0.995, 0.996]))
    assert not target_met("s7", _history([0.99] * 12 + [0.993, 0.995, 0.996]))
    assert not target_met("s7", _history([0.995] * 16))  # more than 15 epochs
    assert not target_met("s7_tiny", _history([0.99] * 12 + [0.995, 0.9939, 0.996]))
    assert target_met("s5", _history([0.986], train_acc=0.951))
    assert not target_met("s5", _history([0.986], train_acc=0.94))
    assert target_met("s6", _history([0.99, 0.994]))
    assert not target_met("s6", _history([0.99] * 20 + [0.995]))  # only the first 20 epochs count
    assert target_met("s7", _history([0.99] * 12 + [0.995] * 3, split="val"))
    assert [t.measure.text for t in (MODELS["s5"].target, MODELS["s6"].target, MODELS["s7"].target)] == [
        "accuracy after epoch 1",
        "best accuracy of any epoch",
        "lowest accuracy of the last 3 epochs",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_recipe_file_is_a_valid_papermill_parameters_file_for_its_model(name):
    r = recipe(name)
    assert r["model"] == name and set(r) <= set(pm.inspect_notebook(TRAINING_NOTEBOOK))
    assert is_recipe_run(check_params({**r, "seed": 1, "device": "cpu"}).as_dict())


@pytest.mark.parametrize("name", NAMES)
def test_a_recipe_sets_every_parameter_of_the_training_itself(name):
    """A parameter a recipe leaves out would let a run that changes it count as the recipe run, whose target must
    hold. Left out: the data (`is_recipe_run` checks it), the seed, and where and on what the run happens."""
    elsewhere = {"dataset", "validation", "subset", "seed", "device", "amp", "data_dir", "output_dir", "resume"}
    assert sorted(recipe(name)) == sorted(set(PARAMETERS) - elsewhere)


def test_a_run_is_the_recipe_run_only_with_every_recipe_value_all_data_and_the_test_set():
    """Only then must the notebook's target hold (its last cell asserts it); any other run reports it."""
    config = check_params({**recipe("s7"), "device": "cpu"}).as_dict()
    assert is_recipe_run(config)
    changed = {"epochs": 14, "lr": 0.05, "rotation": 0.0, "ema": None, "seed": 1}  # seed: not part of a recipe
    for name, value in changed.items():
        assert is_recipe_run({**config, name: value}) == (name == "seed"), name
    for name, value in {"subset": 1000, "validation": True, "dataset": "fashion_mnist"}.items():
        assert not is_recipe_run({**config, name: value}), name
