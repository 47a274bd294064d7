"""Resume bundles: a run continued from one equals the unbroken run."""

import json
import os

import jax
import numpy as np
import pytest

from configs import tiny
from experiments import resume_bundle
from subscale import checkpointing
from subscale import errors
from subscale import resume
from subscale import train


def _state(workdir):
    config = checkpointing.load_config(workdir)
    mngr = checkpointing.manager(workdir, config, read_only=True)
    try:
        state, step = checkpointing.restore(
            mngr, train.Trainer(config).abstract_state()
        )
    finally:
        mngr.close()
    return jax.device_get(state), step


def _losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return {r["step"]: r["loss_bits"] for r in records if "loss_bits" in r}


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("unbroken"))
    train.train_and_evaluate(tiny.get_config(), workdir)  # checkpoints at 2 and 4
    return workdir


def _continue(bundle, workdir):
    config = tiny.get_config()
    config.train.resume_from = bundle
    train.train_and_evaluate(config, workdir)
    return _state(workdir)


def test_a_run_continued_from_a_bundle_equals_the_unbroken_run(unbroken, tmp_path):
    bundle = str(tmp_path / "bundle")
    info = resume_bundle.write_bundle(unbroken, bundle, "float32", step=2)
    assert info["step"] == 2 and info["cost"]["cpu_hours"] > 0
    continued = str(tmp_path / "continued")
    state, step = _continue(bundle, continued)
    expected, expected_step = _state(unbroken)
    assert step == expected_step == 4
    # Parameters, Adam moments and counts, masks: bit for bit.
    jax.tree_util.tree_map(np.testing.assert_array_equal, state, expected)
    # The history came along, and the losses after the bundle are the same.
    assert _losses(continued) == _losses(unbroken)


def test_compact_moments_halve_them_and_cost_little(unbroken, tmp_path):
    exact = resume_bundle.write_bundle(unbroken, str(tmp_path / "a"), "float32", 2)
    compact = str(tmp_path / "b")
    info = resume_bundle.write_bundle(unbroken, compact, "bfloat16", step=2)
    assert info["moments"] == "bfloat16" and exact["moments"] == "float32"
    sizes = [os.path.getsize(tmp_path / x / resume.STATE_FILE) for x in "ab"]
    assert sizes[1] < 0.75 * sizes[0]
    state, _ = _continue(compact, str(tmp_path / "continued"))
    expected, _ = _state(unbroken)
    for got, want in zip(
        jax.tree_util.tree_leaves(state.params),
        jax.tree_util.tree_leaves(expected.params),
    ):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_missing_bundle_names_the_field(tmp_path):
    config = tiny.get_config()
    config.train.resume_from = str(tmp_path / "nowhere")
    with pytest.raises(errors.SubscaleError, match="train.resume_from"):
        train.train_and_evaluate(config, str(tmp_path / "w"))


def test_a_bundle_of_another_model_names_the_leaf(unbroken, tmp_path):
    bundle = str(tmp_path / "bundle")
    resume_bundle.write_bundle(unbroken, bundle, "float32")
    config = tiny.get_config()
    config.train.resume_from = bundle
    config.train.nonfinite = "skip"  # not a shape: the bundle still fits
    config.model.hidden_size = 32
    with pytest.raises(errors.SubscaleError, match="hidden_size"):
        train.train_and_evaluate(config, str(tmp_path / "w"))
