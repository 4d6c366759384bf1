import json

from utils.models import count_params

import torch

from benchmarks import speed, step_options
from benchmarks.reference import reference_net


def test_reference_net_is_the_described_10k_model():
    net = reference_net()
    assert count_params(net) == 10_170
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_quick_benchmark_writes_consistent_json_and_table(mnist_root, tmp_path):
    result = speed.main(["--quick", "--batches", "4", "--workers", "0", "--device", "cpu", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "speed-quick.json").read_text())
    assert saved["ratios"] == result["ratios"]
    reference, s7, engine = saved["runs"]
    assert [r["model"] for r in saved["runs"]] == ["reference", "s7", "reference"]
    assert reference["params"] == engine["params"] == 10_170 and s7["params"] < 8_000
    assert reference["train_images"] == engine["train_images"] == 4 * 128
    assert saved["ratios"]["same_model_throughput"] == engine["images_per_second"] / reference["images_per_second"]
    step_only = saved["reference_step_only_seconds_per_epoch"]
    assert step_only > 0  # how it compares with the whole epoch is a timing: make bench's to report, not a test's
    assert saved["ratios"]["same_model_ceiling"] == reference["seconds_per_epoch"] / step_only
    numerics = saved["numerics"]
    assert numerics["kind"]["portable"].startswith("cpu, portable x86-64 AVX2 numerics")
    assert "portable" not in numerics["kind"]["unpinned"]
    assert numerics["portable_over_unpinned"] == min(numerics["seconds"]["portable"]) / min(
        numerics["seconds"]["unpinned"]
    )
    table = (tmp_path / "speed-quick.md").read_text()
    assert table.count("\n| ") == 4  # header + three runs
    assert "target ≥ 5×" in table and "target ≥ 2×" in table and "a loader that cost nothing would reach" in table
    assert f"**{numerics['portable_over_unpinned']:.2f}×** the time it takes without them" in table


def test_step_profile_lists_the_reference_steps_operators():
    table = step_options.main(["--model", "reference", "--device", "cpu", "--steps", "2", "--profile"])["profile"]
    assert "aten::convolution_backward" in table and "aten::bernoulli_" in table  # convs and dropout's masks
