"""Tests of subscale.audio: 16-bit split, mel alignment, loading and writing."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import soundfile

from configs import default
from subscale import audio
from subscale import errors
from subscale import plots

CFG = audio.MelConfig(
    sample_rate=8_000,
    n_fft=256,
    hop_length=40,
    win_length=160,
    n_mels=16,
    fmin=20.0,
    fmax=4_000.0,
)
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


def test_split_join_round_trip_numpy():
    coarse, fine = audio.split(ALL_INT16)
    assert coarse.dtype == np.int32 and fine.dtype == np.int32
    assert coarse.min() == 0 and coarse.max() == 255
    assert fine.min() == 0 and fine.max() == 255
    np.testing.assert_array_equal(coarse * 256 + fine, np.arange(65536))
    joined = audio.join(coarse, fine)
    assert joined.dtype == np.int16
    np.testing.assert_array_equal(joined, ALL_INT16)


def test_split_join_round_trip_jax_jit():
    samples = jnp.asarray(ALL_INT16)
    coarse, fine = jax.jit(audio.split)(samples)
    assert coarse.dtype == jnp.int32
    assert int(coarse.min()) == 0 and int(coarse.max()) == 255
    assert int(fine.min()) == 0 and int(fine.max()) == 255
    joined = jax.jit(audio.join)(coarse, fine)
    assert joined.dtype == jnp.int16
    np.testing.assert_array_equal(np.asarray(joined), ALL_INT16)


@pytest.mark.parametrize("xp", [np, jnp])
def test_scale_endpoints(xp):
    bits = xp.asarray([0, 255, 128], dtype=xp.int32)
    np.testing.assert_allclose(
        np.asarray(audio.scale(bits)), [-1.0, 1.0, 0.0039216], atol=1e-6
    )


@pytest.mark.parametrize("xp", [np, jnp])
def test_to_int16_rounds_and_clips(xp):
    x = xp.asarray([-2.0, -1.0, 0.0, 0.49 / 32768, 0.51 / 32768, 1.0, 3.0], xp.float32)
    got = np.asarray(audio.to_int16(x))
    np.testing.assert_array_equal(got, [-32768, -32768, 0, 0, 1, 32767, 32767])
    np.testing.assert_array_equal(
        np.asarray(audio.to_int16(audio.to_float(ALL_INT16))), ALL_INT16
    )


def test_mel_config_from_default_config():
    cfg = audio.MelConfig.from_config(default.get_config().data)
    assert cfg.hop_length == 200 and cfg.n_mels == 80 and cfg.sample_rate == 16_000


def test_mel_config_rejects_bad_fields():
    data = ml_collections.ConfigDict(
        dict(
            sample_rate=16_000,
            n_fft=512,
            hop_length=200,
            win_length=800,
            n_mels=80,
            fmin=40.0,
            fmax=8_000.0,
        )
    )
    with pytest.raises(errors.SubscaleError, match="data.win_length"):
        audio.MelConfig.from_config(data)


@pytest.mark.parametrize("t", [0, 39, 40, 41, 1_000, 8_037])
def test_mel_has_one_frame_per_hop(t):
    x = np.random.default_rng(t).uniform(-0.5, 0.5, t).astype(np.float32)
    m = audio.mel(x, CFG)
    assert m.shape == (t // CFG.hop_length, CFG.n_mels)
    assert m.dtype == np.float32
    assert np.isfinite(m).all()
    assert (m >= audio.LOG_MEL_FLOOR - 1e-6).all()


@pytest.mark.parametrize("k", [300, 333, 345, 1_018, 1_579])
def test_mel_frames_align_with_hops(k):
    x = np.zeros(2_000, np.float32)
    x[k] = 1.0
    energy = np.exp(audio.mel(x, CFG)).sum(axis=1)
    assert np.argmax(energy) == k // CFG.hop_length


def test_pad_mel():
    m = np.zeros((3, 4), np.float32)
    padded = audio.pad_mel(m, 2)
    assert padded.shape == (7, 4)
    np.testing.assert_array_equal(padded[2:5], m)
    assert (padded[:2] == audio.LOG_MEL_FLOOR).all()
    assert (padded[5:] == audio.LOG_MEL_FLOOR).all()


def test_load_mixes_and_resamples(tmp_path):
    path = str(tmp_path / "stereo.wav")
    t = np.arange(22_050) / 22_050
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(path, np.stack([left, -0.5 * left], axis=1), 22_050)
    x = audio.load(path, 16_000)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(x.shape[0] - 16_000) <= 1
    # The mono mix of (s, -s / 2) is s / 4: peak 0.125.
    assert abs(np.abs(x).max() - 0.125) < 0.01


def test_load_keeps_matching_rate(tmp_path):
    path = str(tmp_path / "mono.flac")
    samples = np.random.default_rng(0).integers(-3000, 3000, 1_234).astype(np.int16)
    soundfile.write(path, samples, 8_000)
    np.testing.assert_array_equal(audio.to_int16(audio.load(path, 8_000)), samples)


def test_load_missing_file(tmp_path):
    path = str(tmp_path / "nope.wav")
    with pytest.raises(errors.SubscaleError, match="nope.wav"):
        audio.load(path, 16_000)


def test_load_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.flac"
    path.write_bytes(np.random.default_rng(0).bytes(4_096))
    with pytest.raises(errors.SubscaleError, match="corrupt.flac"):
        audio.load(str(path), 16_000)


def test_load_zero_length_file(tmp_path):
    path = str(tmp_path / "empty.wav")
    soundfile.write(path, np.zeros(0, np.int16), 16_000)
    with pytest.raises(errors.SubscaleError, match="empty.wav"):
        audio.load(path, 16_000)


def test_load_non_finite_file(tmp_path):
    path = str(tmp_path / "nan.wav")
    soundfile.write(path, np.array([0.0, np.nan, 0.1], np.float32), 16_000, "FLOAT")
    with pytest.raises(errors.SubscaleError, match="nan.wav"):
        audio.load(path, 16_000)


def test_check_waveform():
    audio.check_waveform(np.zeros(10, np.float32), "x")
    with pytest.raises(errors.SubscaleError, match="wave"):
        audio.check_waveform(np.zeros((2, 10)), "wave")
    with pytest.raises(errors.SubscaleError, match="wave"):
        audio.check_waveform(np.array([0.0, np.inf]), "wave")


def test_write_wav_round_trip(tmp_path):
    path = str(tmp_path / "out" / "deep" / "x.wav")
    samples = np.random.default_rng(0).integers(-32768, 32767, 500).astype(np.int16)
    audio.write_wav(path, samples, 8_000)
    read, rate = soundfile.read(path, dtype="int16")
    assert rate == 8_000
    np.testing.assert_array_equal(read, samples)
    audio.write_wav(path, audio.to_float(samples), 8_000)
    np.testing.assert_array_equal(soundfile.read(path, dtype="int16")[0], samples)
    assert os.listdir(os.path.dirname(path)) == ["x.wav"]


def test_write_wav_error_names_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    path = str(blocker / "x.wav")
    with pytest.raises(errors.SubscaleError, match="x.wav"):
        audio.write_wav(path, np.zeros(10, np.float32), 8_000)


@pytest.mark.parametrize("with_original", [True, False])
def test_save_spectrogram_png(tmp_path, with_original):
    x = np.random.default_rng(0).uniform(-0.3, 0.3, 4_000).astype(np.float32)
    path = tmp_path / "spec.png"
    plots.save_spectrogram_png(str(path), x if with_original else None, x, CFG)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["spec.png"]
