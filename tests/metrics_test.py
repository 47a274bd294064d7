"""Quality metrics and the fold-and-crossfade / Griffin-Lim baselines."""

import jax
import numpy as np
import pytest

from subscale import audio
from subscale import baselines
from subscale import metrics

MEL_CFG = audio.MelConfig(
    sample_rate=16_000,
    n_fft=1024,
    hop_length=200,
    win_length=800,
    n_mels=80,
    fmin=40.0,
    fmax=8_000.0,
)
RATE = MEL_CFG.sample_rate


def harmonic_tone(f0, seconds=1.0, seed=0):
    """A voiced, speech-like test signal: 10 harmonics of f0 and a little noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 11))
    x = 0.3 * x / np.abs(x).max()
    noise = np.random.default_rng(seed).normal(0.0, 1e-3, t.shape)
    return (x + noise).astype(np.float32)


def noisy(x, level, seed=1):
    return x + np.random.default_rng(seed).normal(0.0, level, x.shape).astype(
        np.float32
    )


def test_identical_signals_have_zero_distance():
    x = harmonic_tone(150.0)
    m = audio.mel(x, MEL_CFG)
    assert metrics.log_mel_distance(m, m) == 0.0
    assert metrics.mel_cepstral_distortion(m, m) == 0.0
    track = metrics.f0_track(x, RATE, MEL_CFG.hop_length)
    error = metrics.f0_error(track, track)
    assert error["f0_rmse_cents"] == 0.0
    assert error["voicing_disagreement"] == 0.0
    assert error["voiced_frames"] > 40


def test_more_noise_is_farther():
    x = harmonic_tone(150.0)
    m = audio.mel(x, MEL_CFG)
    mild = audio.mel(noisy(x, 0.003), MEL_CFG)
    strong = audio.mel(noisy(x, 0.03), MEL_CFG)
    assert 0 < metrics.log_mel_distance(m, mild) < metrics.log_mel_distance(m, strong)
    assert (
        0
        < metrics.mel_cepstral_distortion(m, mild)
        < metrics.mel_cepstral_distortion(m, strong)
    )


def test_log_mel_distance_of_a_gain_is_the_gain_in_db():
    x = harmonic_tone(150.0)
    m = audio.mel(x, MEL_CFG)
    half = audio.mel(0.5 * x, MEL_CFG)
    assert metrics.log_mel_distance(m, half) == pytest.approx(20 * np.log10(2), 1e-3)
    # A gain moves only c_0, which MCD leaves out.
    assert metrics.mel_cepstral_distortion(m, half) == pytest.approx(0.0, abs=1e-3)


def test_pitch_shift_of_a_semitone_is_100_cents():
    x = harmonic_tone(150.0)
    shifted = harmonic_tone(150.0 * 2 ** (1 / 12))
    ref = metrics.f0_track(x, RATE, MEL_CFG.hop_length)
    est = metrics.f0_track(shifted, RATE, MEL_CFG.hop_length)
    error = metrics.f0_error(ref, est)
    assert error["f0_rmse_cents"] == pytest.approx(100.0, abs=15.0)


def test_masks_select_frames():
    m = np.zeros((10, 4))
    est = m.copy()
    est[3] = 1.0  # one frame off by 1 neper
    mask = np.zeros(10, bool)
    mask[3] = True
    assert metrics.log_mel_distance(m, est, mask) == pytest.approx(metrics.DB_PER_NEPER)
    assert metrics.log_mel_distance(m, est, ~mask) == 0.0
    assert np.isnan(metrics.log_mel_distance(m, est, np.zeros(10, bool)))


def test_near_mask_windows():
    # Frame centres 100, 300, 500, ...; a seam at 800 with radius 250.
    mask = metrics.near_mask(8, [800], 250, 200)
    assert mask.tolist() == [False, False, False, True, True, False, False, False]
    assert not metrics.near_mask(8, [], 250, 200).any()


@pytest.mark.skipif(not metrics.available()["pesq"], reason="pesq not installed")
def test_pesq_orders_noise():
    x = harmonic_tone(150.0, seconds=2.0)
    clean = metrics.pesq_wb(x, x, RATE)
    assert clean > 4.0
    assert metrics.pesq_wb(x, noisy(x, 0.003), RATE) > metrics.pesq_wb(
        x, noisy(x, 0.03), RATE
    )


def test_stoi_orders_noise():
    x = harmonic_tone(150.0, seconds=2.0)
    assert metrics.stoi(x, x, RATE) == pytest.approx(1.0, abs=1e-6)
    assert metrics.stoi(x, noisy(x, 0.01), RATE) > metrics.stoi(x, noisy(x, 0.3), RATE)
    assert metrics.stoi(x[:1000], x[:1000], RATE) is None


def test_crossfade_of_two_constant_chunks_is_a_linear_ramp():
    a = np.full(10, 2.0)
    b = np.full(14, -1.0)
    out = baselines.crossfade([a, b], [0, 6], 20)
    weight = (np.arange(4) + 0.5) / 4
    np.testing.assert_allclose(out[:6], 2.0)
    np.testing.assert_allclose(out[6:10], 2.0 * (1 - weight) - weight, atol=1e-6)
    np.testing.assert_allclose(out[10:], -1.0)
    ones = baselines.crossfade([np.ones(10), np.ones(14)], [0, 6], 20)
    np.testing.assert_array_equal(ones, np.ones(20))


def test_crossfade_rejects_gaps():
    with pytest.raises(ValueError, match="gap"):
        baselines.crossfade([np.ones(5), np.ones(5)], [0, 6], 11)


@pytest.mark.parametrize(
    "frames,chunks,overlap", [(80, 4, 2), (80, 16, 2), (97, 16, 3), (50, 1, 2)]
)
def test_chunk_bounds_cover_the_utterance_exactly(frames, chunks, overlap):
    bounds, seams = baselines.chunk_bounds(frames, chunks, overlap)
    assert len(bounds) == chunks and len(seams) == chunks - 1
    assert bounds[0][0] == 0 and bounds[-1][1] == frames
    count = np.zeros(frames, int)
    for start, end in bounds:
        count[start:end] += 1
    assert count.min() == 1
    for k in range(1, chunks):
        assert bounds[k - 1][1] - bounds[k][0] == overlap
        assert np.all(count[bounds[k][0] : bounds[k - 1][1]] == 2)
        assert seams[k - 1] == (bounds[k][0] + bounds[k - 1][1]) / 2
    assert count.sum() == frames + overlap * (chunks - 1)


def test_chunk_bounds_reject_short_cores():
    with pytest.raises(ValueError, match="fewer than the overlap"):
        baselines.chunk_bounds(20, 16, 2)


def test_fold_and_crossfade_places_every_chunk():
    """A fake sampler that writes each chunk's first mel value as its samples."""
    hop = 4
    mel = np.repeat(np.arange(24, dtype=np.float32)[:, None], 3, axis=1)

    def sample_fn(params, batch, key, lengths):
        del params, key
        frame_values = np.repeat(batch[:, :, 0], hop, axis=1)
        valid = np.arange(frame_values.shape[1])[None] < lengths[:, None] * hop
        return np.where(valid, frame_values * 100, 0).astype(np.int16)

    wave, seams = baselines.fold_and_crossfade(
        sample_fn, None, mel, jax.random.PRNGKey(0), hop, 4, 2, margin=1
    )
    assert wave.shape == (24 * hop,)
    # Each sample is the value of its own frame, whichever chunk made it.
    expected = audio.to_float(np.repeat(np.arange(24) * 100, hop).astype(np.int16))
    np.testing.assert_allclose(wave, expected, atol=1e-6)
    assert seams == [6 * hop, 12 * hop, 18 * hop]


def test_griffin_lim_reproduces_the_mel():
    x = harmonic_tone(150.0)
    x = x[: x.shape[0] // MEL_CFG.hop_length * MEL_CFG.hop_length]
    m = audio.mel(x, MEL_CFG)
    y = baselines.griffin_lim(m, MEL_CFG, n_iter=16)
    assert y.shape == x.shape and np.all(np.abs(y) <= 1.0)
    # Close in log-mel (few dB), far from white noise of the same level.
    noise = np.random.default_rng(0).normal(0, x.std(), x.shape).astype(np.float32)
    distance = metrics.log_mel_distance(m, audio.mel(y, MEL_CFG))
    assert distance < 0.5 * metrics.log_mel_distance(m, audio.mel(noise, MEL_CFG))
