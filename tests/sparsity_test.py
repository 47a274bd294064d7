"""Pruning schedule, block masks, masked training and the sparse sampling path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import subscale
from configs import tiny
from subscale import models
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
    r = np.asarray(models.matrix(masks, "R"))
    for gate in np.split(r, 3, axis=1):  # each gate block pruned separately
        blocks = gate.reshape(8, 2, 4, 4)  # [in / 2, 2, out / 4, 4]
        # Every block is all kept or all pruned.
        assert np.all(blocks.min((1, 3)) == blocks.max((1, 3)))
        assert np.mean(blocks.max((1, 3)) == 0) == pytest.approx(
            round(fraction * 32) / 32
        )
    # The pruned blocks are the weakest by mean magnitude.
    w = np.abs(np.asarray(models.matrix(params, "R")[:, :16])).reshape(8, 2, 4, 4)
    score = w.mean((1, 3))
    kept = r[:, :16].reshape(8, 2, 4, 4).max((1, 3)) > 0
    assert score[kept].min() >= score[~kept].max()


def test_masks_only_grow_and_update_on_schedule():
    cfg = sparsity_config(prune=("R",), block_shape=(4, 1))
    params = models.matrix_tree(
        {"R": jax.random.normal(jax.random.PRNGKey(0), (16, 48))}
    )
    first = sparsity.compute_masks(params, 0.5, cfg)
    # Unmasked weights: the blocks pruned at 50 % are no longer the weakest ...
    r0, r1 = models.matrix(params, "R"), models.matrix(first, "R")
    bigger = models.matrix_tree({"R": r0 * (2.0 - r1) * 10})
    second = sparsity.compute_masks(bigger, 0.75, cfg, first)
    r2 = np.asarray(models.matrix(second, "R"))
    assert np.all(r2 <= r1)  # ... and still stay pruned
    for gate in np.split(r2, 3, axis=1):
        assert np.mean(gate == 0) == pytest.approx(0.75)
    masks = sparsity.init_masks(params, cfg)
    for step in range(0, 21):
        new = sparsity.update_masks(params, masks, step, cfg)
        assert (new is not masks) == (step in (10, 15, 20)), step
        masks = new
    assert np.mean(np.asarray(models.matrix(masks, "R")) == 0) == pytest.approx(
        round(sparsity.schedule(20, cfg) * 64) / 64  # 64 blocks per gate
    )


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
    r = np.asarray(models.matrix(vocoder.params, "R"))
    assert np.mean(r == 0) == pytest.approx(0.5, abs=0.01)
    zero_before = r == 0
    more = sparse_tiny_config()
    more.train.num_steps = 6
    train.train_and_evaluate(more, str(tmp_path))  # resumes with the masks
    after = np.asarray(models.matrix(subscale.load(str(tmp_path)).params, "R"))
    assert np.all(after[zero_before] == 0)  # Adam's moments revive nothing
    assert np.mean(after == 0) == pytest.approx(0.5, abs=0.01)


def test_adam_moments_cannot_revive_scheduled_pruning():
    config = sparse_tiny_config(target=0.75)
    trainer = train.Trainer(config)
    state = trainer.init_state(0)
    assert set(state.masks["cell"]) == {"R", "O2"}
    rng = np.random.default_rng(1)
    example = trainer.example()
    batch = dict(
        samples=rng.integers(-3_000, 3_000, (2, 400), dtype=np.int16),
        mel=np.tile(example["mel"], (2, 1, 1)) - 4.0,
    )
    for step in range(5):  # the ramp ends at step 3 (t0 = 1, S = 2)
        state = sparsity.maybe_update_masks(state, step, config)
        state, _ = trainer.train_step(state, trainer.shard(batch))
    r = np.asarray(models.matrix(state.params, "R"))
    pruned = np.asarray(models.matrix(state.masks, "R")) == 0
    assert np.mean(pruned) == pytest.approx(0.75) and np.all(r[pruned] == 0)
    o2 = np.asarray(models.matrix(state.params, "O2"))
    assert np.all(o2[np.asarray(models.matrix(state.masks, "O2")) == 0] == 0)
    # Adam's first moment of the pruned weights is not zero: without re-masking
    # after the update they would move.
    adam = state.opt_state[1][0]
    assert np.abs(np.asarray(models.matrix(adam.mu, "R"))[pruned]).max() > 0


# The default run keeps B = 16; B = 1 and 4 run with -m slow.
@pytest.mark.parametrize(
    "factor,horizon,lookback",
    [
        pytest.param(1, 0, 0, marks=pytest.mark.slow),
        pytest.param(4, 2, 3, marks=pytest.mark.slow),
        (16, 1, 2),
    ],
)
def test_sparse_path_equals_dense_masked_path(factor, horizon, lookback):
    cfg, model, params, _, mel, _ = subscale_test.setup(factor, horizon, lookback, 96)
    scfg = sparsity_config(block_shape=(4, 1), prune=("R", "O1", "O2", "O3", "O4"))
    params = sparsity.apply_masks(params, sparsity.compute_masks(params, 0.8, scfg))
    layouts = sparsity.sampling_layouts(params, scfg)
    assert set(layouts) == {"R", "O1", "O2", "O3", "O4"}
    assert layouts["R"].density == pytest.approx(0.2, abs=0.01)
    key = jax.random.PRNGKey(3)
    dense = sampling.make_sample_fn(cfg, with_log_probs=True)
    for chosen in (["R"], ["O1", "O3"], list(layouts)):
        sparse = sampling.make_sample_fn(
            cfg,
            with_log_probs=True,
            sparse_layouts={name: layouts[name] for name in chosen},
        )
        for mels in (
            mel[0],
            jnp.concatenate([mel, mel[:, ::-1]]),
        ):  # 1 and 2 utterances
            expected = dense(params, mels, key)
            got = sparse(params, mels, key)
            np.testing.assert_array_equal(got[0], expected[0])
            np.testing.assert_allclose(got[1], expected[1], atol=1e-5)


def test_sparse_subscale_keeps_the_exact_dependencies():
    cfg, model, params, samples, _, padded = subscale_test.setup(16, 1, 1, 128)
    scfg = sparsity_config(block_shape=(4, 1), prune=("R",))
    params = sparsity.apply_masks(params, sparsity.compute_masks(params, 0.9, scfg))
    subscale_test.check_dependencies(model, params, samples, padded, 16, 1)


def test_block_sparse_matmul_matches_dense():
    # 16x2 blocks (16 outputs, 2 inputs) of a [32, 48] kernel [in, out]: 16 x 3.
    kept = np.random.default_rng(0).random((16, 1, 3, 1)) >= 0.7
    kernel = np.array(jax.random.normal(jax.random.PRNGKey(0), (32, 48)))
    kernel *= np.broadcast_to(kept, (16, 2, 3, 16)).reshape(32, 48)
    layout = sparsity.block_layout(kernel, (16, 2))
    assert layout.density == pytest.approx(kept.mean())
    assert layout.index.shape == (3, kept.sum(0).max())
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 32))
    packed = sparsity.pack_blocks(jnp.asarray(kernel), layout)
    np.testing.assert_allclose(
        sparsity.block_sparse_matmul(x, packed, layout), x @ kernel, atol=1e-5
    )


def test_auto_sparse_path_for_a_sparse_model():
    config = sparse_tiny_config(target=0.9)
    params = subscale.create(config).params
    scfg = sparsity.SparsityConfig.from_config(config)
    sparse_params = sparsity.apply_masks(
        params, sparsity.compute_masks(params, 0.9, scfg)
    )
    sparse = subscale.Vocoder(config, sparse_params)
    assert set(sparse.sparse_layouts) == {"R", "O2"}  # sparsity.prune
    half = sparsity.apply_masks(params, sparsity.compute_masks(params, 0.5, scfg))
    assert subscale.Vocoder(config, half).sparse_layouts == {}  # too dense to pay
    config.sampling.sparse = "on"
    assert set(subscale.Vocoder(config, half).sparse_layouts) == {"R", "O2"}
    config.sampling.sparse = "off"
    dense = subscale.Vocoder(config, sparse_params)
    assert dense.sparse_layouts == {}
    mel = np.full((2, config.data.n_mels), -4.0, np.float32)
    np.testing.assert_array_equal(sparse.generate(mel), dense.generate(mel))
