"""experiments/recipe_ablation.py: rows, budgets and a quick end-to-end run."""

import dataclasses
import json
import os

import pytest

from experiments import recipe_ablation


def test_every_row_gets_the_same_budget():
    options = recipe_ablation.Options(combine=("pre_emphasis", "crop_context"))
    planned = recipe_ablation.plan(options)
    assert (1, "neighbours") not in planned and (16, "neighbours") in planned
    assert (1, "combined") in planned and (16, "floor") in planned
    for factor, row in planned:
        if row in recipe_ablation.SAMPLING_ROWS:
            continue
        config = recipe_ablation.row_config(factor, row, options)
        base = recipe_ablation.row_config(factor, "base", options)
        assert config.train.num_steps == 800
        assert config.model.hidden_size == 256
        assert (
            config.data.seq_len * config.train.batch_size
            == base.data.seq_len * base.train.batch_size
        )
    combined = recipe_ablation.row_config(16, "combined", options)
    assert combined.data.pre_emphasis == 0.85 and combined.data.crop_context


def test_output_distribution_rows_change_one_thing_each():
    options = recipe_ablation.Options(train_dir="../shared/data/manifest.csv")
    configs = {
        row: recipe_ablation.row_config(16, row, options)
        for row in ("combined_prior", "gaussian_prior", "bin_mass", "tail", "bounded")
    }
    distribution = {
        row: (c.model.prior, c.model.tail_mass) for row, c in configs.items()
    }
    assert distribution == {
        "combined_prior": ("logistic", 2.0**-8),  # today's defaults
        "gaussian_prior": ("gaussian", 0.0),
        "bin_mass": ("logistic", 0.0),
        "tail": ("gaussian", 2.0**-8),
        "bounded": ("logistic", 2.0**-8),
    }
    for config in configs.values():
        assert config.data.train_dir == "../shared/data/manifest.csv"
        assert config.model.lp_prior and config.data.pre_emphasis == 0.85
    mild = recipe_ablation.row_config(1, "mild_pre_emphasis", options)
    assert mild.data.pre_emphasis == 0.5 and mild.model.tail_mass == 2.0**-8
    for model_row, _ in recipe_ablation.SAMPLING_ROWS.values():
        assert model_row in recipe_ablation.ROWS
    base = recipe_ablation.row_config(1, "base", recipe_ablation.Options())
    assert base.data.train_dir == "subscale:demo_data"


# The rows and budgets are tested above; this end-to-end run takes 30-55 s.
@pytest.mark.slow
def test_quick_run_writes_results_and_reuses_runs(tmp_path):
    options = recipe_ablation.quick_options(workdir=str(tmp_path))
    records = recipe_ablation.run(options, "test")
    rows = {(r["factor"], r["row"]) for r in records}
    assert rows == set(recipe_ablation.plan(options))
    for name in ("results.jsonl", "results.md", "ablation.png"):
        assert os.path.getsize(os.path.join(tmp_path, name)) > 0
    for record in records:
        assert record["eval_bits"] > 0 and "loudness_corr" in record
    with open(os.path.join(tmp_path, "results.md")) as f:
        text = f.read()
    assert "| floor |" in text and "| combined |" in text
    # A second run trains nothing.
    again = recipe_ablation.run(options, "test")
    assert all(r["train_seconds"] is None for r in again)
    with open(os.path.join(tmp_path, "results.jsonl")) as f:
        assert len([json.loads(line) for line in f]) == len(records)
    # More clips: the free-running scores are computed again, the NLL of the
    # same checkpoints reused (it does not depend on the clips or sampling).
    more = recipe_ablation.run(dataclasses.replace(options, clips=2), "test")
    for old, new in zip(records, more, strict=True):
        assert new["clips"] == 2 and old["clips"] == 1
        assert new["eval_bits"] == old["eval_bits"]
