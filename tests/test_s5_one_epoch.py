"""The seed's CI claim, re-run for real: s5, one epoch on all 60,000 training images."""

from utils.config import TrainParams
from utils.engine import build, fit
from utils.models import MODELS, recipe

import pytest

pytestmark = pytest.mark.slow  # real trainings: make test runs them, make test-quick does not


def test_s5_one_epoch_reaches_95_train_and_98_5_test(mnist_root):
    r = recipe("s5")
    history = fit(build(TrainParams(**r, data_dir=str(mnist_root)), "cpu"))
    print(history)
    assert r["epochs"] == 1
    assert history[0]["train_acc"] >= 0.95
    assert history[0]["eval_acc"] >= 0.985 and history[0]["split"] == "test"
    assert MODELS["s5"].target.met(history)
