"""The seed's CI claim, re-run for real: s5, one epoch on all 60,000 training images."""

from utils.data import Augment, make_loaders
from utils.engine import fit, make_optimizer, seed_everything
from utils.models import get_model, recipe, target_met

import pytest

pytestmark = pytest.mark.slow  # real trainings: make test runs them, make test-quick does not


def test_s5_one_epoch_reaches_95_train_and_98_5_test(mnist_root):
    r = recipe("s5")
    seed_everything(1)
    train, test = make_loaders(mnist_root, r["batch_size"], "cpu", Augment(r["rotation"], r["translate"]), seed=1)
    model = get_model("s5")
    history = fit(
        model, make_optimizer(model, r["optimizer"], r["lr"]), train, test, epochs=r["epochs"], lr_warmup=r["lr_warmup"]
    )
    print(history)
    assert r["epochs"] == 1
    assert history[0]["train_acc"] >= 0.95
    assert history[0]["test_acc"] >= 0.985
    assert target_met("s5", history)
