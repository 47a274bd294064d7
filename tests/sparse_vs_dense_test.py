"""experiments.sparse_vs_dense: equal non-zeros, outputs and reuse of runs."""

import json
import os

import pytest

from configs import demo
from experiments import sparse_vs_dense as svd


def test_sparse_models_match_the_dense_non_zeros():
    options = svd.Options(
        workdir="/unused", dense_hidden=(64, 128), widen=(2, 4), max_hidden=256
    )
    runs = svd.make_runs(svd.base_for(demo.get_config(), options), options)
    names = [r.name for r in runs]
    assert names == [
        "dense64",
        "sparse128_z75",
        "sparse256_z93.75",
        "dense128",
        "sparse256_z75",
    ]
    for run in runs:
        kept = 1.0 - run.config.sparsity.target
        assert 3 * run.hidden**2 * kept == pytest.approx(3 * run.dense_hidden**2)
        s = run.config.sparsity
        end = s.start_step + s.ramp_steps
        assert 0 < s.start_step < end < run.config.train.num_steps


# Equal non-zeros and the outputs are tested above; this end-to-end run
# takes 20-30 s.
@pytest.mark.slow
def test_quick_run_writes_every_output_and_reuses_finished_runs(tmp_path):
    options = svd.quick_options(workdir=str(tmp_path))
    records = svd.run_experiment(demo.get_config(), options, "test")
    assert [r["name"] for r in records] == ["dense16", "sparse32_z75"]
    dense, sparse = records
    assert dense["nonzeros_R"] == sparse["nonzeros_R"] == 3 * 16**2
    assert sparse["sparsity_R"] == pytest.approx(0.75)
    for name in ("results.jsonl", "results.md", "nll_vs_sparsity.png"):
        assert os.path.getsize(tmp_path / name) > 0
    lines = [json.loads(x) for x in open(tmp_path / "results.jsonl")]
    assert lines == records
    again = svd.run_experiment(demo.get_config(), options, "test")
    assert [r["train_seconds"] for r in again] == [None, None]  # reused
    assert [r["dev_bits"] for r in again] == [r["dev_bits"] for r in records]
