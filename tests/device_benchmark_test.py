"""experiments.device_benchmark: its models, its --quick run and its outputs."""

import json

import pytest
from absl import flags

from configs import speech16k
from experiments import device_benchmark


def test_sampled_models_are_speech16k_at_each_size_and_factor():
    base = speech16k.get_config()
    wide = device_benchmark.sampling_model(base, 896, 16)
    assert (wide.hidden_size, wide.subscale_factor) == (896, 16)
    assert (wide.future_horizon, wide.lookback) == (16, 32)
    assert (wide.lp_order, wide.lp_prior, wide.cond_channels) == (16, True, 96)
    plain = device_benchmark.sampling_model(base, 384, 1)
    assert (plain.subscale_factor, plain.future_horizon, plain.lookback) == (1, 0, 0)
    assert base.model.subscale_factor == 16  # the base config is left alone


def _quick_run(output, *args):
    argv = ["device_benchmark", "--quick", f"--output={output}", *args]
    fv = flags.FlagValues()  # leaves absl's global FLAGS alone
    device_benchmark.define_flags(fv)
    fv(argv)
    device_benchmark.main(argv[:1], fv)
    records = [json.loads(x) for x in open(output / "cpu_quick.jsonl")]
    for record in records:
        assert record["backend"] == "cpu" and record["device"]
        assert record["samples_per_second"] > 0 and record["compile_s"] > 0
    trained = records[-1]
    assert trained["kind"] == "train_step"
    assert (trained["hidden_size"], trained["subscale_factor"]) == (32, 16)
    assert (trained["batch_size"], trained["seq_len"]) == (2, 800)
    table = (output / "cpu_quick.md").read_text()
    assert "- Command: `python -m experiments.device_benchmark" in table
    assert "| 32 | 16 | 2 x 800 |" in table
    return records[:-1], table


def test_quick_run_from_the_command_line(tmp_path):
    # One sampling case (B = 1, 95 % sparse: the block-sparse path) and the
    # train step; the whole --quick grid is the slow test below.
    sampled, table = _quick_run(tmp_path, "--factors=1", "--sparsities=0.95")
    [record] = sampled
    assert record["kind"] == "sampling"
    assert (record["hidden_size"], record["subscale_factor"]) == (32, 1)
    assert record["sparsity"] == 0.95
    assert record["pruned"] == ["R", "O1", "O2", "O3", "O4"]
    assert "| 32 | 1 | 0.95 | 1 |" in table


@pytest.mark.slow
def test_whole_quick_grid(tmp_path):
    sampled, table = _quick_run(tmp_path)
    cases = [(r["subscale_factor"], r["sparsity"]) for r in sampled]
    assert cases == [(1, 0.0), (1, 0.95), (16, 0.0), (16, 0.95)]
    for factor, sparsity in cases:
        assert f"| 32 | {factor} | {sparsity:g} | 1 |" in table
