"""The Python API on untrained models: shapes, dtypes and argument checks."""

import concurrent.futures
import threading

import jax
import numpy as np
import pytest

import subscale
from configs import tiny
from subscale import audio
from subscale import errors

HOP = 200
N_MELS = 80


@pytest.fixture(scope="module", params=[1, 4], ids=["B1", "B4"])
def vocoder(request):
    config = tiny.get_config()
    config.model.subscale_factor = request.param
    config.model.future_horizon = 1
    config.model.lookback = 2
    return subscale.create(config, seed=0)


def _mel(frames, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-6.0, 0.0, (frames, N_MELS)).astype(np.float32)


def test_generate_shapes_and_range(vocoder):
    wave = vocoder.generate(_mel(5), seed=1)
    assert wave.shape == (5 * HOP,) and wave.dtype == np.float32
    assert np.all(np.abs(wave) <= 1.0)
    np.testing.assert_array_equal(wave, vocoder.generate(_mel(5), seed=1))
    waves = vocoder.generate([_mel(5), _mel(2, seed=1)], seed=1)
    assert [w.shape for w in waves] == [(5 * HOP,), (2 * HOP,)]
    raw = vocoder.sample_fn(vocoder.params, _mel(5), jax.random.PRNGKey(1), None, 1.0)
    assert raw.shape == (5 * HOP,) and raw.dtype == np.int16
    np.testing.assert_array_equal(audio.to_float(np.asarray(raw)), wave)


def test_sample_fn_defaults_to_the_configured_sampling():
    """`jax.jit(vocoder.sample_fn)(params, mel, key)`, as a Colab user calls it,
    draws what `generate` draws: at config.sampling's temperature, coarse
    temperature, floor and voiced temperature, not at plain temperature 1."""
    config = tiny.get_config()
    config.sampling.temperature = 0.6
    config.sampling.coarse_temperature = 0.8
    config.sampling.prob_floor = 0.002
    config.sampling.voiced_temperature = 0.3
    vocoder = subscale.create(config, seed=0)
    mel, key = _mel(5), jax.random.PRNGKey(3)
    raw = np.asarray(jax.jit(vocoder.sample_fn)(vocoder.params, mel, key))
    np.testing.assert_array_equal(audio.to_float(raw), vocoder.generate(mel, seed=3))
    plain = vocoder.sample_fn(vocoder.params, mel, key, None, 1.0, None, 0.0)
    assert np.any(np.asarray(plain) != raw)
    # A temperature given alone leaves the configured coarse one and the floor.
    warm = vocoder.sample_fn(vocoder.params, mel, key, temperature=1.0)
    np.testing.assert_array_equal(
        audio.to_float(np.asarray(warm)), vocoder.generate(mel, 3, temperature=1.0)
    )


def test_log_prob_pads_and_trims(vocoder):
    # 5 frames = 1000 samples: not a multiple of hop * B = 800 when B = 4.
    samples = np.random.default_rng(0).integers(-300, 300, 5 * HOP, dtype=np.int16)
    log_p = vocoder.log_prob(samples, _mel(5))
    assert log_p.shape == (5 * HOP,) and log_p.dtype == np.float32
    assert np.all(np.isfinite(log_p)) and np.all(log_p <= 0.0)


def test_features_and_vocode_lengths(vocoder):
    x = np.random.default_rng(0).uniform(-0.1, 0.1, 1_034).astype(np.float32)
    assert vocoder.features(x, 16_000).shape == (1_034 // HOP, N_MELS)
    stereo = np.stack([x, 3 * x], axis=1)  # mixed to mono: 2 x
    np.testing.assert_allclose(
        vocoder.features(stereo, 16_000), vocoder.features(2 * x, 16_000), atol=1e-5
    )
    assert vocoder.vocode(x, 16_000).shape == ((1_034 // HOP) * HOP,)


def test_bad_arrays_name_the_argument(vocoder):
    mel = _mel(3)
    mel[1, 4] = np.nan
    with pytest.raises(errors.SubscaleError, match=r"mel\[1\]: contains NaN"):
        vocoder.generate([_mel(3), mel])
    with pytest.raises(errors.SubscaleError, match="mel: contains NaN"):
        vocoder.log_prob(np.zeros(3 * HOP, np.int16), mel)
    with pytest.raises(errors.SubscaleError, match="samples: expected int16"):
        vocoder.log_prob(np.zeros(3 * HOP, np.float32), _mel(3))
    with pytest.raises(errors.SubscaleError, match="n_mels=80"):
        vocoder.log_prob(np.zeros(3 * HOP, np.int16), _mel(3)[:, :40])
    x = np.zeros(1_000, np.float32)
    x[7] = np.inf
    with pytest.raises(errors.SubscaleError, match="audio"):
        vocoder.features(x, 16_000)


def test_generate_from_four_threads_equals_four_serial_calls():
    config = tiny.get_config()
    config.model.subscale_factor = 4
    config.model.future_horizon = 1
    config.model.lookback = 2
    calls = [
        lambda v: v.generate(_mel(5), seed=1),
        lambda v: v.generate(_mel(5, seed=1), seed=2, temperature=0.7),
        lambda v: v.generate(_mel(5, seed=2), seed=3),
        lambda v: v.generate(_mel(5, seed=3), seed=4, temperature=1.3),
    ]
    # A fresh vocoder: the threads meet its compilation caches cold.
    vocoder = subscale.create(config, seed=0)
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call(vocoder)

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        parallel = list(pool.map(run, calls))
    for call, wave in zip(calls, parallel, strict=True):
        np.testing.assert_array_equal(call(vocoder), wave)
