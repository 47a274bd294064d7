"""Voicing from the mel: how periodic each frame is, for pitch-aware sampling.

Notation: f frames, m mel bands.

The mel resolves the harmonics of a voiced frame in its low bands (below
about 1 kHz the bands are 37 Hz apart). The power spectrum that the linear
prediction derives from the mel (`linear_prediction.mel_to_bins`), taken to an
autocorrelation *without* the lag window that keeps only the envelope, shows
them as a peak at the pitch period: the frame's pitch correlation

    g = max over lags T in [sr / MAX_F0, sr / MIN_F0] of r(T) / r(0),

the quantity LPCNet computes from the waveform to sharpen its sampling in
voiced speech. Measured on 4,535 non-silent frames of 40 dev clips of the
four voices of ../shared/data, this g follows the waveform's normalised
pitch correlation with r = 0.90 (0.89-0.93 per voice); its median is 0.69 in
frames whose waveform correlation exceeds 0.7 and 0.16 in the others.
`voicing` maps it to a weight in [0, 1] with a ramp from UNVOICED to VOICED.
A low voice reads as partly voiced: harmonics 110 Hz apart are barely
resolved by bands 37 Hz apart (a 110 Hz tone gets weight 0.46, one at
165 Hz or above, 1; over the non-silent frames, g has median 0.51 and 0.53
for the two male voices, 0.68 and 0.71 for the female ones).

It depends only on the mel, so a sampler can use it at no cost in
dependencies: it never looks at a generated sample.
"""

import functools

import jax.numpy as jnp
import numpy as np

from subscale import linear_prediction

MIN_F0 = 60.0  # Hz: the longest pitch period searched
MAX_F0 = 400.0  # Hz: the shortest
UNVOICED = 0.3  # pitch correlation at or below which a frame counts unvoiced
VOICED = 0.7  # at or above which it counts fully voiced


@functools.lru_cache(maxsize=None)
def _bases(sample_rate, n_fft):
    """(power -> r(0) [bins, 1], power -> r(T) [bins, lags]) numpy constants."""
    lags = np.arange(int(sample_rate / MAX_F0), int(sample_rate / MIN_F0) + 1)
    zero = linear_prediction.autocorrelation_basis(n_fft, np.array([0]))
    return zero.astype(np.float32), linear_prediction.autocorrelation_basis(
        n_fft, lags
    ).astype(np.float32)


def correlation(cfg, log_mel):
    """The pitch correlation g of every frame.

    Args:
      cfg: anything with the mel fields sample_rate, n_fft, n_mels, fmin,
        fmax (models.ModelConfig, the data config).
      log_mel: [..., f, m] natural-log magnitude mel (`audio.mel`).

    Returns:
      float32 [..., f] in [0, 1].
    """
    to_bins = linear_prediction.mel_to_bins(
        cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax
    )
    zero, lagged = _bases(cfg.sample_rate, cfg.n_fft)
    power = linear_prediction.power_spectrum(log_mel, to_bins)
    r0 = (power @ zero)[..., 0]
    g = jnp.max(power @ lagged, axis=-1) / jnp.maximum(r0, 1e-20)
    return jnp.clip(g, 0.0, 1.0)


def voicing(cfg, log_mel):
    """Voicing weight of every frame: 0 where g <= UNVOICED, 1 where
    g >= VOICED, linear between. [..., f, m] -> float32 [..., f]."""
    g = correlation(cfg, log_mel)
    return jnp.clip((g - UNVOICED) / (VOICED - UNVOICED), 0.0, 1.0)
