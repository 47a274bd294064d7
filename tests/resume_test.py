"""Resume bundles: a run continued from one equals the unbroken run."""

import json
import os

import jax
import numpy as np
import pytest

from configs import tiny
from experiments import checkpoint_average
from experiments import resume_bundle
from subscale import checkpointing
from subscale import errors
from subscale import pretrained
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


def test_a_moving_average_continues_from_a_bundle_and_starts_on_an_old_one(
    unbroken, tmp_path
):
    """With `train.ema_decay` the average travels in the bundle (exact, or as a
    compact difference); a bundle or checkpoint written before the run kept
    one starts it at the parameters; inference loads the average."""
    config = tiny.get_config()
    config.train.ema_decay = 0.9
    averaged = str(tmp_path / "averaged")
    train.train_and_evaluate(config, averaged)
    expected, _ = _state(averaged)
    assert not np.allclose(
        jax.tree_util.tree_leaves(expected.ema)[0],
        jax.tree_util.tree_leaves(expected.params)[0],
    )
    config.train.resume_from = str(tmp_path / "exact")
    resume_bundle.write_bundle(averaged, config.train.resume_from, "float32", step=2)
    train.train_and_evaluate(config, str(tmp_path / "continued"))
    state, _ = _state(str(tmp_path / "continued"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, state, expected)
    for average, want in ((True, expected.ema), (False, expected.params)):
        _, params, _ = pretrained.restore(str(tmp_path / "continued"), average)
        jax.tree_util.tree_map(np.testing.assert_array_equal, params, want)

    compact = str(tmp_path / "compact")
    resume_bundle.write_bundle(averaged, compact, "bfloat16", step=4)
    at_4, _ = resume.read(compact, train.Trainer(config).abstract_state())
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
        jax.device_get(at_4.ema),
        expected.ema,
    )
    # The bundle and the checkpoint of a run without an average: it starts at
    # the parameters.
    old = str(tmp_path / "old")
    resume_bundle.write_bundle(unbroken, old, "float32", step=4)
    at_4, _ = resume.read(old, train.Trainer(config).abstract_state())
    plain, _ = _state(unbroken)
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, jax.device_get(at_4.ema), plain.params
    )
    _, params, _, _ = checkpointing.restore_params(unbroken, config)
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, plain.params)


def test_checkpoint_average_reads_each_gathered_step(unbroken, tmp_path):
    """experiments/checkpoint_average reads every step folder of a gathered
    copy as that checkpoint's own weights."""
    folder = os.path.join(unbroken, "checkpoints")
    assert checkpoint_average.steps_in(folder)[-2:] == [2, 4]
    config_path = os.path.join(unbroken, "config.json")
    at_4 = checkpoint_average.params_at(config_path, folder, 4, str(tmp_path))
    at_2 = checkpoint_average.params_at(config_path, folder, 2, str(tmp_path))
    expected, _ = _state(unbroken)
    jax.tree_util.tree_map(np.testing.assert_array_equal, at_4, expected.params)
    assert not np.array_equal(
        jax.tree_util.tree_leaves(at_2)[0], jax.tree_util.tree_leaves(at_4)[0]
    )
    with pytest.raises(errors.SubscaleError, match="no step folders"):
        checkpoint_average.steps_in(str(tmp_path / "2"))


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
