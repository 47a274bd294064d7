"""baselines.lpc_bits: the LPC reference NLL against known entropies."""

import numpy as np
import pytest

from subscale import baselines


def laplace_bits(scale):
    """Entropy in bits of a Laplace(scale) rounded to integers (scale >> 1)."""
    return np.log2(2 * np.e * scale)


def ar2(innovations):
    x = np.zeros(len(innovations))
    for n in range(2, len(x)):
        x[n] = 1.6 * x[n - 1] - 0.8 * x[n - 2] + innovations[n]
    return x


def test_an_autoregressive_signal_costs_its_innovation_entropy():
    rng = np.random.default_rng(0)
    scale = 40.0
    x = np.round(ar2(rng.laplace(0.0, scale, 16_000))).astype(np.int16)
    bits = baselines.lpc_bits(x, order=8)
    # Prediction removes the AR part: what is left is the innovation's entropy
    # (slightly less: the per-frame scale is fitted on the frame itself).
    assert np.mean(bits[320:]) == pytest.approx(laplace_bits(scale), abs=0.1)
    # Far below coding the samples themselves, about 4x the innovation.
    assert np.mean(bits[320:]) < laplace_bits(np.mean(np.abs(x))) - 1.5


@pytest.mark.parametrize("distribution", ["laplace", "gaussian"])
def test_white_noise_is_not_predictable(distribution):
    rng = np.random.default_rng(1)
    x = np.round(rng.normal(0.0, 300.0, 8_000)).astype(np.int16)
    bits = np.mean(baselines.lpc_bits(x, distribution=distribution))
    gaussian = 0.5 * np.log2(2 * np.pi * np.e * 300.0**2)
    assert gaussian - 0.05 < bits < gaussian + 0.25  # laplace misfits a little
    assert np.all(np.isfinite(baselines.lpc_bits(np.zeros(700, np.int16))))
