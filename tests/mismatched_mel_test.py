"""Mels a little off, as a TTS front end makes them: the packaged model stays sane.

A held-out dev clip's mel, scaled by +-3 dB, shifted by one frame, with 1 dB of
Gaussian noise, and another speaker's clip in its place: `speech16k` generates
all of them (one batched call, 0.75 s each) without a blow-up, a clipping
runaway or DC drift, with a loudness that follows the intended one. Written
against the public API, so it applies to whatever model ships as speech16k.
"""

import math

import numpy as np
import pytest

import subscale
from subscale import audio
from subscale import input_pipeline
from subscale import metrics

# Dev-split files of the shared corpus (the embedded demo corpus is part of it):
# never seen by speech16k.
CLIP = "it_IT_m_Carlo/queue-thankyou.flac"
OTHER = "en_US_f_Allison/all-circuits-busy-now.flac"
FRAMES = 60
DB = math.log(10.0) / 20.0  # 1 dB of magnitude in the natural-log mel
# Loudness is compared over 50 ms blocks (4 frames): syllable-scale changes,
# above the sampling noise of single 12.5 ms frames.
BLOCK_FRAMES = 4


def _clip(vocoder, name, first):
    """(mel [FRAMES, m], the audio it describes) from frame `first` on."""
    rate, hop = vocoder.config.data.sample_rate, vocoder.hop_length
    wave = audio.load(f"{input_pipeline.DEMO_DIR}/train/{name}", rate)
    mel = vocoder.features(wave, rate, name=name)[first : first + FRAMES]
    return mel, wave[first * hop : (first + FRAMES) * hop]


@pytest.fixture(scope="module")
def generated():
    """{case: (generated audio, the audio whose loudness it should follow)}."""
    vocoder = subscale.load("speech16k")
    mel, wave = _clip(vocoder, CLIP, 1)
    shifted_mel, shifted_wave = _clip(vocoder, CLIP, 0)  # one frame late
    noise = np.random.default_rng(0).normal(0.0, DB, mel.shape)
    cases = dict(
        original=(mel, wave),
        up_3db=(mel + 3 * DB, wave),
        down_3db=(mel - 3 * DB, wave),
        shifted=(shifted_mel, shifted_wave),
        noisy=((mel + noise).astype(np.float32), wave),
        other_clip=_clip(vocoder, OTHER, 1),
    )
    outputs = vocoder.generate([m for m, _ in cases.values()], seed=0)
    return vocoder.hop_length, {
        name: (out, intended)
        for (name, (_, intended)), out in zip(cases.items(), outputs, strict=True)
    }


@pytest.mark.parametrize(
    "case", ["original", "up_3db", "down_3db", "shifted", "noisy", "other_clip"]
)
def test_generation_stays_sane_and_follows_the_loudness(generated, case):
    hop, outputs = generated
    out, intended = outputs[case]
    assert out.shape == intended.shape
    assert np.all(np.isfinite(out))
    assert np.mean(np.abs(out) >= 0.99) < 1e-3, "clipping"
    quarters = out.reshape(4, -1)
    assert np.abs(quarters.mean(axis=1)).max() < 0.05, "DC drift"
    rms, intended_rms = np.sqrt(np.mean(out**2)), np.sqrt(np.mean(intended**2))
    assert intended_rms / 3 < rms < intended_rms * 3
    r = metrics.loudness_correlation(intended, out, hop * BLOCK_FRAMES)
    assert r >= 0.9, f"{case}: loudness correlation {r:.3f}"


def test_a_louder_mel_gives_louder_audio(generated):
    _, outputs = generated
    rms = {case: np.sqrt(np.mean(out**2)) for case, (out, _) in outputs.items()}
    assert rms["down_3db"] < rms["original"] < rms["up_3db"]
