"""pitch.py: the mel-derived pitch correlation and voicing weight."""

import csv
import os

import numpy as np
import pytest

from configs import default
from subscale import audio
from subscale import pitch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
MEL = default.get_config().data
SR = MEL.sample_rate


def waveform_correlation(x, frames):
    """The normalised pitch correlation of the waveform around each frame's
    centre, the best over the lags `pitch` searches (the reference)."""
    hop, half = MEL.hop_length, MEL.win_length // 2
    lo, hi = int(SR / pitch.MAX_F0), int(SR / pitch.MIN_F0)
    padded = np.pad(x, (half, half + hi))
    out = []
    for j in range(frames):
        seg = padded[j * hop + hop // 2 : j * hop + hop // 2 + 2 * half + hi]
        a = seg[: 2 * half]
        lagged = np.lib.stride_tricks.sliding_window_view(seg, 2 * half)[lo : hi + 1]
        num = lagged @ a
        den = np.sqrt((a * a).sum() * (lagged * lagged).sum(axis=1)) + 1e-9
        out.append((num / den).max())
    return np.array(out)


def test_a_harmonic_tone_is_voiced_and_noise_is_not():
    t = np.arange(SR) / SR
    # 110 Hz harmonics are barely resolved by bands 37 Hz apart: partly voiced.
    for f0, least in ((110.0, 0.3), (165.0, 0.9), (220.0, 1.0)):
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 20))
        mel = audio.mel((0.1 * tone).astype(np.float32), MEL)
        assert np.asarray(pitch.voicing(MEL, mel))[5:-5].min() >= least, f0
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    mel = audio.mel(noise, MEL)
    assert np.asarray(pitch.voicing(MEL, mel))[5:-5].max() == 0.0
    silence = audio.mel(np.zeros(SR, np.float32), MEL)
    assert np.asarray(pitch.voicing(MEL, silence)).max() == 0.0


def test_it_follows_the_waveforms_pitch_correlation_on_real_speech():
    """Dev clips of each voice of ../shared/data: the mel-derived correlation
    tracks the waveform's (the module docstring's r = 0.90 on 40 clips)."""
    manifest = os.path.join(SHARED, "manifest.csv")
    if not os.path.isfile(manifest):
        pytest.skip("../shared/data is not beside the repository")
    with open(manifest) as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "dev"]
    first = {}
    for r in rows:
        if float(r["duration_s"]) > 2.0:
            first.setdefault(r["speaker"], r["file"])
    assert len(first) == 4
    ours, reference = [], []
    for path in first.values():
        x = audio.load(os.path.join(SHARED, path), SR)
        mel = audio.mel(x, MEL)
        loud = mel.max(axis=1) > np.log(1e-3)
        ours.append(np.asarray(pitch.correlation(MEL, mel))[loud])
        reference.append(waveform_correlation(x, mel.shape[0])[loud])
    ours, reference = np.concatenate(ours), np.concatenate(reference)
    assert np.corrcoef(ours, reference)[0, 1] > 0.8
    voiced = reference > 0.7
    assert np.median(ours[voiced]) > pitch.VOICED - 0.1
    assert np.median(ours[~voiced]) < pitch.UNVOICED
