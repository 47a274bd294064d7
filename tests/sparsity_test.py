"""Pruning schedule, block masks, masked training and the sparse sampling path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import subscale
from configs import tiny
from subscale import sampling
from subscale import sparsity
from subscale import train
from tests import subscale_test


def sparsity_config(**overrides):
    fields = dict(
        target=0.9,
        start_step=10,
        ramp_steps=100,
        every_steps=5,
        block_shape=(4, 2),
        prune=("R", "O1"),
    )
    fields.update(overrides)
    return sparsity.SparsityConfig(**fields)


def test_schedule_values():
    cfg = sparsity_config()
    assert sparsity.schedule(0, cfg) == 0.0
    assert sparsity.schedule(9, cfg) == 0.0
    assert sparsity.schedule(10, cfg) == 0.0
    assert sparsity.schedule(60, cfg) == pytest.approx(0.9 * (1 - 0.5**3))
    assert sparsity.schedule(110, cfg) == pytest.approx(0.9)
    assert sparsity.schedule(10_000, cfg) == pytest.approx(0.9)
    assert [s for s in range(0, 40) if sparsity.is_update_step(s, cfg)] == [
        10,
        15,
        20,
        25,
        30,
        35,
    ]
    assert not sparsity.is_update_step(20, sparsity_config(target=0.0))


@pytest.mark.parametrize("fraction", [0.5, 0.75, 0.9])
def test_block_masks_exact_fraction_and_structure(fraction):
    cfg = sparsity_config()
    params = {
        "cell": {
            "R": jax.random.normal(jax.random.PRNGKey(0), (16, 48)),
            "O1": {
                "kernel": jax.random.normal(jax.random.PRNGKey(1), (8, 8)),
                "bias": jnp.ones(8),
            },
        }
    }
    masks = sparsity.compute_masks(params, fraction, cfg)
    assert set(masks["cell"]) == {"R", "O1"} and "bias" not in masks["cell"]["O1"]
    r = np.asarray(masks["cell"]["R"])
    for gate in np.split(r, 3, axis=1):  # each gate block pruned separately
        blocks = gate.reshape(8, 2, 4, 4)  # [in / 2, 2, out / 4, 4]
        # Every block is all kept or all pruned.
        assert np.all(blocks.min((1, 3)) == blocks.max((1, 3)))
        assert np.mean(blocks.max((1, 3)) == 0) == pytest.approx(
            round(fraction * 32) / 32
        )
    # The pruned blocks are the weakest by mean magnitude.
    w = np.abs(np.asarray(params["cell"]["R"][:, :16])).reshape(8, 2, 4, 4)
    score = w.mean((1, 3))
    kept = r[:, :16].reshape(8, 2, 4, 4).max((1, 3)) > 0
    assert score[kept].min() >= score[~kept].max()


def sparse_tiny_config(target=0.5):
    config = tiny.get_config()
    config.sparsity.target = target
    config.sparsity.start_step = 1
    config.sparsity.ramp_steps = 2
    config.sparsity.every_steps = 1
    config.sparsity.block_shape = (4, 1)
    config.sparsity.prune = ("R", "O2")
    config.train.num_steps = 4
    return config


def test_pruned_weights_stay_zero_through_training_and_resume(tmp_path):
    config = sparse_tiny_config()
    train.train_and_evaluate(config, str(tmp_path))
    vocoder = subscale.load(str(tmp_path))
    r = np.asarray(vocoder.params["cell"]["R"])
    assert np.mean(r == 0) == pytest.approx(0.5, abs=0.01)
    zero_before = r == 0
    more = sparse_tiny_config()
    more.train.num_steps = 6
    train.train_and_evaluate(more, str(tmp_path))  # resumes with the masks
    after = np.asarray(subscale.load(str(tmp_path)).params["cell"]["R"])
    assert np.all(after[zero_before] == 0)  # Adam's moments revive nothing
    assert np.mean(after == 0) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("factor,horizon,lookback", [(1, 0, 0), (4, 2, 3)])
def test_sparse_path_equals_dense_masked_path(factor, horizon, lookback):
    cfg, model, params, _, mel, _ = subscale_test.setup(factor, horizon, lookback, 96)
    scfg = sparsity_config(block_shape=(4, 1), prune=("R",))
    params = sparsity.apply_masks(params, sparsity.compute_masks(params, 0.8, scfg))
    layout = sparsity.block_layout(np.asarray(params["cell"]["R"]), (4, 1))
    assert layout.density == pytest.approx(0.2, abs=0.01)
    key = jax.random.PRNGKey(3)
    dense = sampling.make_sample_fn(cfg, with_log_probs=True)(params, mel[0], key)
    sparse = sampling.make_sample_fn(cfg, with_log_probs=True, sparse_layout=layout)(
        params, mel[0], key
    )
    np.testing.assert_array_equal(sparse[0], dense[0])
    np.testing.assert_allclose(sparse[1], dense[1], atol=1e-5)


def test_sparse_subscale_keeps_the_exact_dependencies():
    cfg, model, params, samples, _, padded = subscale_test.setup(16, 1, 1, 128)
    scfg = sparsity_config(block_shape=(4, 1), prune=("R",))
    params = sparsity.apply_masks(params, sparsity.compute_masks(params, 0.9, scfg))
    subscale_test.check_dependencies(model, params, samples, padded, 16, 1)


def test_block_sparse_matmul_matches_dense():
    kernel = np.array(jax.random.normal(jax.random.PRNGKey(0), (32, 48)))
    kernel[
        np.random.default_rng(0).random((16, 1, 3, 16)).repeat(2, 1).reshape(32, 48)
        < 0.7
    ] = 0.0
    layout = sparsity.block_layout(kernel, (16, 2))
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 32))
    packed = sparsity.pack_blocks(jnp.asarray(kernel), layout)
    np.testing.assert_allclose(
        sparsity.block_sparse_matmul(x, packed, layout), x @ kernel, atol=1e-5
    )


def test_auto_sparse_path_for_a_sparse_model():
    config = sparse_tiny_config(target=0.9)
    vocoder = subscale.create(config)
    params = vocoder.params
    scfg = sparsity.SparsityConfig.from_config(config)
    params = sparsity.apply_masks(params, sparsity.compute_masks(params, 0.9, scfg))
    sparse = subscale.Vocoder(config, params)
    assert sparse.sparse_layout is not None
    config.sampling.sparse = "off"
    assert subscale.Vocoder(config, params).sparse_layout is None
    mel = np.full((2, config.data.n_mels), -4.0, np.float32)
    np.testing.assert_array_equal(
        sparse.generate(mel), subscale.Vocoder(config, params).generate(mel)
    )
