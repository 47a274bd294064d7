"""The training-recipe options: pre-emphasis, crop context, input noise,
direct neighbours, the fine-input scale, and the sampler's shaping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from subscale import audio
from subscale import distribution
from subscale import folding
from subscale import input_pipeline
from subscale import models
from subscale import sampling
from tests import oracles
from tests import subscale_test

HOP = subscale_test.HOP
N_MELS = subscale_test.N_MELS


recipe_setup = subscale_test.setup


# --- Sampling: the inverse CDF and the shaping of the softmax. ---


def test_inverse_cdf_never_draws_a_class_of_probability_zero():
    probs = np.zeros((4, 256), np.float32)
    probs[:, 7] = 0.25
    probs[:, 100] = 0.75
    u = jnp.array([0.0, 0.2499, 0.25, np.nextafter(np.float32(1), np.float32(0))])
    drawn = distribution.draw_inverse_cdf(jnp.asarray(probs), u)
    # u = 0 used to give class 0 whatever its probability.
    np.testing.assert_array_equal(drawn, [7, 7, 100, 100])


def test_inverse_cdf_draws_by_probability():
    logits = jax.random.normal(jax.random.PRNGKey(0), (1, 256)) * 3
    probs = jax.nn.softmax(logits)
    u = jax.random.uniform(jax.random.PRNGKey(1), (20_000,))
    drawn = distribution.draw_inverse_cdf(jnp.broadcast_to(probs, (20_000, 256)), u)
    counts = np.bincount(np.asarray(drawn), minlength=256) / 20_000
    np.testing.assert_allclose(counts, probs[0], atol=0.012)


def test_shaping_floor_and_coarse_temperature():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.199, 0.001] + [1e-12] * 252]))
    shaping = sampling.Shaping.make(
        temperature=1.0, coarse_temperature=0.5, floor=0.002
    )
    fine = shaping.probs(logits, 1)
    coarse = shaping.probs(logits, 0)
    # The floor removes the tail, the rest is renormalised by the draw.
    assert float(fine[0, 3]) == 0.0 and float(fine[0, 4:].sum()) == 0.0
    np.testing.assert_allclose(fine[0, :3], [0.498, 0.298, 0.197], atol=1e-6)
    # The coarse softmax is sharper at temperature 0.5.
    assert float(coarse[0, 0]) > float(fine[0, 0]) + 0.1
    # Below 1/256, a floor keeps every class of a uniform softmax.
    flat = sampling.Shaping.make(floor=0.0039).probs(jnp.zeros((1, 256)), 1)
    assert bool(jnp.all(flat > 0))
    with pytest.raises(ValueError, match="prob_floor"):
        sampling.check_shaping(1.0, None, 1 / 256)


def test_voicing_moves_each_rows_temperatures_towards_the_voiced_one():
    shaping = sampling.Shaping.make(0.8, coarse_temperature=0.4, voiced_temperature=0.2)
    rows = shaping.for_voicing(jnp.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(rows.temperature[:, 0], [0.8, 0.5, 0.2], rtol=1e-6)
    np.testing.assert_allclose(
        rows.coarse_temperature[:, 0], [0.4, 0.25, 0.1], rtol=1e-6
    )
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(3, 256)))
    for r, t in enumerate((0.8, 0.5, 0.2)):
        np.testing.assert_allclose(
            rows.probs(logits, 1)[r], jax.nn.softmax(logits[r] / t), rtol=1e-5
        )
    off = sampling.Shaping.make(0.8).for_voicing(jnp.array([0.0, 1.0]))
    np.testing.assert_array_equal(off.temperature[:, 0], np.float32([0.8, 0.8]))


def test_sample_fn_coarse_temperature_and_floor_change_the_draw():
    cfg, _, params, _, mel, _ = subscale_test.setup()
    sample_fn = sampling.make_sample_fn(cfg)
    key = jax.random.PRNGKey(3)
    plain = sample_fn(params, mel[0], key)
    same = sample_fn(params, mel[0], key, coarse_temperature=1.0, prob_floor=0.0)
    np.testing.assert_array_equal(plain, same)
    cold = sample_fn(params, mel[0], key, coarse_temperature=0.3)
    floored = sample_fn(params, mel[0], key, prob_floor=0.003)
    assert np.any(cold != plain) and np.any(floored != plain)


# --- Pre-emphasis. ---


@pytest.mark.parametrize("coeff", [0.0, 0.5, 0.85])
def test_pre_emphasis_is_inverted_exactly_whole_and_in_chunks(coeff):
    rng = np.random.default_rng(0)
    x = rng.integers(-15000, 15000, (2, 700)).astype(np.int16)
    y = audio.pre_emphasis(x, coeff)
    whole, _ = sampling.de_emphasis(jnp.asarray(y), coeff)
    np.testing.assert_array_equal(whole, x)
    state = None
    pieces = []
    for first in range(0, 700, 300):
        piece, state = sampling.de_emphasis(
            jnp.asarray(y[:, first : first + 300]), coeff, state
        )
        pieces.append(np.asarray(piece))
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), x)


def test_train_equals_sample_with_pre_emphasis():
    cfg, model, params, _, mel, _ = recipe_setup(1, 0, 0, 48, pre_emphasis=0.85)
    # Quiet samples (coarse classes near the middle), so that de-emphasis never
    # clips and pre-emphasis gives back exactly what was drawn.
    near_zero = 30.0 * np.exp(-(((np.arange(256) - 127.5) / 3.0) ** 2))
    params = jax.tree_util.tree_map(lambda p: p, params)  # setup() is cached
    params["cell"]["O2"]["bias"] = params["cell"]["O2"]["bias"] + near_zero
    subscale_test.check_train_equals_sample(
        cfg, model, params, mel, drawn=lambda x: audio.pre_emphasis(x, 0.85)
    )


# --- Direct neighbours and the fine-input scale. ---


@pytest.mark.parametrize(
    "factor,horizon,lookback,rows,scale",
    [
        (1, 0, 0, 0, 0.05),
        # Experimental options (nothing ships with them): the larger cases
        # run with -m slow.
        pytest.param(4, 2, 3, 2, 1.0, marks=pytest.mark.slow),
        pytest.param(16, 1, 2, 2, 0.1, marks=pytest.mark.slow),
        pytest.param(4, 0, 1, 1, 1.0, marks=pytest.mark.slow),
    ],
)
def test_train_equals_sample_with_neighbours(factor, horizon, lookback, rows, scale):
    cfg, model, params, _, mel, _ = recipe_setup(
        factor, horizon, lookback, 96, neighbour_rows=rows, fine_input_scale=scale
    )
    assert len(cfg.neighbour_offsets) == rows * (min(horizon, 1) + 1)
    subscale_test.check_train_equals_sample(cfg, model, params, mel)


@pytest.mark.parametrize(
    "factor,horizon,lookback,rows,length",
    [(4, 2, 3, 2, 64), pytest.param(16, 1, 2, 2, 128, marks=pytest.mark.slow)],
)
def test_exact_dependencies_with_neighbours(factor, horizon, lookback, rows, length):
    _, model, params, samples, _, padded = recipe_setup(
        factor, horizon, lookback, length, neighbour_rows=rows, fine_input_scale=0.5
    )
    subscale_test.check_dependencies(model, params, samples, padded, factor, horizon)


def test_neighbours_reach_the_cell():
    _, model, params, samples, _, padded = recipe_setup(4, 2, 3, 32, neighbour_rows=1)
    assert params["cell"]["I_neighbours"]["kernel"].shape == (4, 48)
    base = model.apply({"params": params}, samples, padded)
    zeroed = jax.tree_util.tree_map(lambda p: p, params)
    zeroed["cell"]["I_neighbours"]["kernel"] = jnp.zeros((4, 48))
    assert np.abs(model.apply({"params": zeroed}, samples, padded) - base).max() > 1e-3


# --- Crop context: real samples around a crop, read but not scored. ---


@pytest.mark.parametrize(
    "factor,horizon,lookback",
    [(1, 0, 0), pytest.param(4, 2, 3, marks=pytest.mark.slow), (16, 3, 2)],
)
def test_crop_with_its_right_context_equals_the_longer_waveform(
    factor, horizon, lookback
):
    """A crop at the start of an utterance, told the F columns after it, scores
    as the same columns of the whole utterance do; without them the last F
    columns of B > 1 think the future is silence."""
    columns, right = 12, horizon
    length = factor * (columns + right)
    cfg, model, params, samples, mel, _ = recipe_setup(
        factor, horizon, lookback, length, neighbour_rows=min(1, factor - 1)
    )
    whole = sampling.pad_frames(mel, jnp.array([mel.shape[1]]))
    full = model.apply({"params": params}, samples, whole)
    crop_len = factor * columns
    # The crop's mel: its frames with MEL_PAD real neighbours, as the pipeline.
    crop_mel = audio.pad_mel(np.asarray(mel[0]), models.MEL_PAD)[
        : crop_len // HOP + 2 * models.MEL_PAD
    ][None]
    inputs = jnp.pad(samples, ((0, 0), (factor, 0)))
    told = model.apply(
        {"params": params},
        samples[:, :crop_len],
        crop_mel,
        inputs=inputs,
        margins=(1, right),
        inputs_valid=jnp.arange(inputs.shape[1])[None] >= factor,
    )
    np.testing.assert_allclose(told[0], full[0, :crop_len], atol=2e-5, rtol=1e-5)
    if factor > 1:
        blind = model.apply({"params": params}, samples[:, :crop_len], crop_mel)
        assert np.abs(blind[0] - full[0, :crop_len]).max() > 1e-3


def test_train_batches_margins_and_input_noise():
    rng = np.random.default_rng(0)
    utterances = [
        input_pipeline.Utterance(
            f"u{k}",
            "train",
            rng.integers(-9000, 9000, n).astype(np.int16),
            np.zeros((n // 10, 3), np.float32),
        )
        for k, n in enumerate([400, 1000])
    ]
    kw = dict(seq_len=100, batch_size=8, hop_length=10, mel_pad=2, seed=3)
    plain = input_pipeline.TrainBatches(utterances, **kw)
    told = input_pipeline.TrainBatches(utterances, margins=(30, 20), **kw)
    noisy = input_pipeline.TrainBatches(
        utterances,
        margins=(30, 20),
        input_noise=(64.0, 256.0),
        input_noise_start=5,
        **kw,
    )
    for step in (0, 7):
        a, b, c = plain.get(step), told.get(step), noisy.get(step)
        assert "inputs" not in a
        np.testing.assert_array_equal(a["samples"], b["samples"])
        np.testing.assert_array_equal(b["samples"], c["samples"])
        np.testing.assert_array_equal(b["inputs"][:, 30:-20], b["samples"])
        # The margins hold the waveform around the crop, zeros past its ends.
        for row, crop in zip(b["inputs"], b["samples"]):
            wave = next(u.samples for u in utterances if _contains(u.samples, crop))
            start = _find(wave, crop)
            padded = np.pad(wave, (30, 20))
            np.testing.assert_array_equal(row, padded[start : start + 150])
        inside = np.pad(np.ones(1000, bool), (30, 20))
        assert b["inputs_valid"].shape == b["inputs"].shape
        assert not np.all(b["inputs_valid"]) or np.all(inside[30:130])
        if step < 5:
            np.testing.assert_array_equal(c["inputs"], b["inputs"])
        else:
            spread = np.std(c["inputs"].astype(float) - b["inputs"], axis=1)
            assert np.all(spread > 40) and np.all(spread < 400)
    np.testing.assert_array_equal(noisy.get(7)["inputs"], noisy.get(7)["inputs"])


def _find(wave, crop):
    for start in range(wave.shape[0] - crop.shape[0] + 1):
        if np.array_equal(wave[start : start + crop.shape[0]], crop):
            return start
    return -1


def _contains(wave, crop):
    return _find(wave, crop) >= 0


def test_eval_crops_with_margins_and_pre_emphasis():
    rng = np.random.default_rng(1)
    wave = rng.integers(-9000, 9000, 500).astype(np.int16)
    utterance = input_pipeline.Utterance("u", "dev", wave, np.zeros((50, 3)))
    crops = input_pipeline.eval_crops(
        [utterance],
        seq_len=200,
        hop_length=10,
        mel_pad=2,
        pre_emphasis=0.85,
        margins=(16, 8),
    )
    emphasised = audio.pre_emphasis(wave, 0.85)
    np.testing.assert_array_equal(crops["samples"][1], emphasised[200:400])
    np.testing.assert_array_equal(crops["inputs"][1], emphasised[184:408])
    np.testing.assert_array_equal(crops["inputs"][0][:16], 0)
    assert not crops["inputs_valid"][0][:16].any()
    assert crops["inputs_valid"][0][16:].all() and crops["inputs_valid"][1].all()


def test_context_columns_follow_the_config():
    from configs import demo_subscale

    config = demo_subscale.get_config()
    config.data.crop_context = False
    assert input_pipeline.context_columns(config) == (0, 0)
    config.data.crop_context = True
    assert input_pipeline.context_columns(config) == (
        config.model.lookback,
        config.model.future_horizon,
    )


def test_fold_of_neighbour_offsets_matches_original_times():
    """Row s - o at column i + c is time B (i + c) + s - o: before (s, i) for
    c = 0, after it for c = 1, and allowed by the dependency structure."""
    cfg = models.ModelConfig(
        hidden_size=4,
        cond_channels=2,
        n_mels=2,
        hop_length=4,
        subscale_factor=8,
        future_horizon=3,
        lookback=4,
        neighbour_rows=2,
    )
    for o, c in cfg.neighbour_offsets:
        for s in range(o, 8):
            p = folding.original_time(s - o, 5 + c, 8)
            q = folding.original_time(s, 5, 8)
            assert oracles.may_depend(p, q, 8, 3)


# --- Linear prediction from the mel. ---


def test_linear_prediction_from_the_mel_predicts_real_speech():
    from subscale import linear_prediction

    path = "subscale/demo_data/train/en_US_f_Allison/vm-tomakecall.flac"
    mel_cfg = audio.MelConfig(16_000, 1024, 200, 800, 80, 40.0, 8_000.0)
    x = audio.load(path, 16_000)
    mel = audio.mel(x, mel_cfg)
    cfg = models.ModelConfig(
        hidden_size=4, cond_channels=2, n_mels=80, hop_length=200, lp_order=16
    )
    coef = np.asarray(linear_prediction.coefficients(cfg, jnp.asarray(mel)))[:, 0]
    t = mel.shape[0] * 200
    x = x[:t]
    _, _, d = linear_prediction.offsets(1, 0, 16)
    padded = np.pad(x, (16, 0))
    past = np.stack([padded[16 + k : 16 + k + t] for k in d[0]], axis=-1)
    prediction = np.sum(coef[np.arange(t) // 200] * past, axis=-1)
    gain = 10 * np.log10(np.mean(x**2) / np.mean((x - prediction) ** 2))
    assert gain > 15.0  # 21 dB when measured


def test_linear_prediction_offsets_are_allowed_and_held_by_the_sampler():
    from subscale import linear_prediction

    for factor, horizon in [(1, 0), (4, 2), (16, 16), (16, 1)]:
        rows_back, columns, d = linear_prediction.offsets(factor, horizon, 8)
        depth = linear_prediction.history_columns(factor, horizon, 8)
        for s in range(factor):
            for o, c, dd in zip(rows_back[s], columns[s], d[s]):
                p = folding.original_time(s - o, 50 + c, factor)
                q = folding.original_time(s, 50, factor)
                assert p - q == dd and oracles.may_depend(p, q, factor, horizon)
                assert o * (horizon + 1) - c < depth
        # Nearest first: the previous sample leads at every row that has it.
        assert all(d[s, 0] == -1 for s in range(1, factor))


@pytest.mark.parametrize(
    "factor,horizon,lookback,order,prior",
    [
        (1, 0, 0, 6, False),
        (4, 2, 3, 5, False),
        (16, 1, 2, 4, False),
        (1, 0, 0, 6, True),
        (16, 1, 2, 4, True),
    ],
)
def test_train_equals_sample_with_linear_prediction(
    factor, horizon, lookback, order, prior
):
    cfg, model, params, _, mel, _ = recipe_setup(
        factor, horizon, lookback, 96, lp_order=order, lp_prior=prior
    )
    assert params["cell"]["I_lp"]["kernel"].shape == (1, 48)
    assert ("S_coarse" in params["cell"]) == prior
    subscale_test.check_train_equals_sample(cfg, model, params, mel, atol=5e-5)


@pytest.mark.parametrize(
    "factor,horizon,lookback,length",
    [
        pytest.param(1, 0, 0, 32, marks=pytest.mark.slow),
        pytest.param(4, 2, 3, 64, marks=pytest.mark.slow),
        (16, 1, 2, 128),
    ],
)
def test_exact_dependencies_with_linear_prediction(factor, horizon, lookback, length):
    _, model, params, samples, _, padded = recipe_setup(
        factor, horizon, lookback, length, lp_order=6, lp_prior=True
    )
    subscale_test.check_dependencies(model, params, samples, padded, factor, horizon)


# --- State carried across consecutive crops. ---


def test_consecutive_crops_follow_each_other_and_replay_exactly():
    rng = np.random.default_rng(2)
    utterances = [
        input_pipeline.Utterance(
            f"u{k}",
            "train",
            rng.integers(-9000, 9000, n).astype(np.int16),
            rng.normal(size=(n // 10, 3)).astype(np.float32),
        )
        for k, n in enumerate([500, 1200, 800])
    ]
    kw = dict(seq_len=100, batch_size=4, hop_length=10, mel_pad=2, seed=5)
    walker = input_pipeline.TrainBatches(utterances, consecutive=True, **kw)
    batches = [walker.get(step) for step in range(30)]
    assert batches[0]["reset"].all()
    resets = 0
    for before, after in zip(batches, batches[1:]):
        for k in range(4):
            if after["reset"][k]:
                resets += 1
                continue
            # The next crop starts where the previous one ended.
            wave = next(
                u.samples
                for u in utterances
                if _contains(u.samples, before["samples"][k])
            )
            start = _find(wave, before["samples"][k])
            np.testing.assert_array_equal(
                after["samples"][k], wave[start + 100 : start + 200]
            )
    assert 0 < resets < 4 * 29
    # Asked for a later step first, a fresh pipeline replays the same walk.
    fresh = input_pipeline.TrainBatches(utterances, consecutive=True, **kw)
    for step in (17, 3, 29):
        for key in ("samples", "mel", "reset"):
            np.testing.assert_array_equal(fresh.get(step)[key], batches[step][key])


def test_carried_state_continues_the_recurrence():
    """Crop 2 from crop 1's final states scores as the second half of the
    whole waveform does (B = 1, the previous sample as left context)."""
    cfg, model, params, samples, mel, _ = recipe_setup(1, 0, 0, 48)
    whole = sampling.pad_frames(mel, jnp.array([mel.shape[1]]))
    full = model.apply({"params": params}, samples, whole)
    padded = audio.pad_mel(np.asarray(mel[0]), models.MEL_PAD)[None]
    half = 24
    first_mel = padded[:, : half // HOP + 2 * models.MEL_PAD]
    second_mel = padded[:, half // HOP :]
    c1, f1, state = model.apply(
        {"params": params}, None, samples[:, :half], first_mel, method="log_probs_from"
    )
    c2, f2, _ = model.apply(
        {"params": params},
        state,
        samples[:, half:],
        second_mel,
        inputs=samples[:, half - 1 :],
        margins=(1, 0),
        method="log_probs_from",
    )
    np.testing.assert_allclose(c1 + f1, full[:, :half], atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(c2 + f2, full[:, half:], atol=2e-5, rtol=1e-5)


@pytest.mark.slow  # an experimental option (train.carry_state)
def test_carry_state_training_resumes_exactly(tmp_path):
    from configs import tiny
    from subscale import checkpointing
    from subscale import train

    config = tiny.get_config()
    config.train.carry_state = True
    config.data.crop_context = True
    config.train.num_steps = 4
    config.train.checkpoint_every_steps = 2
    train.train_and_evaluate(config, str(tmp_path / "once"))
    config.train.num_steps = 2
    train.train_and_evaluate(config, str(tmp_path / "twice"))
    config.train.num_steps = 4
    train.train_and_evaluate(config, str(tmp_path / "twice"))
    trainer = train.Trainer(config)
    states = []
    for name in ("once", "twice"):
        mngr = checkpointing.manager(str(tmp_path / name), config, read_only=True)
        try:
            states.append(checkpointing.restore(mngr, trainer.abstract_state())[0])
        finally:
            mngr.close()
    assert states[0].carried["h"].shape == (config.train.batch_size, 16)
    assert np.abs(np.asarray(states[0].carried["h"])).max() > 0
    jax.tree_util.tree_map(np.testing.assert_array_equal, states[0], states[1])
