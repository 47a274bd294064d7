"""Linear prediction from the mel: a prediction of each sample that enters the cell.

Notation: B subscale factor, K predictor order, f frames, m mel bands, L lags.

LPCNet's observation: the spectral envelope a WaveRNN must otherwise learn
from billions of samples is in the conditioning already. The power spectrum
of a frame follows from its mel (each FFT bin takes the normalised weighted
mean of the bands that cover it, squared), its autocorrelation r follows from
the power spectrum (an inverse cosine transform), and from r the best linear
predictor of a sample from any set of other samples follows by solving the
normal equations

    sum_j r(|d_i - d_j|) a_j = r(|d_i|),    i = 1 .. K,

where d_1 .. d_K are the time offsets of the samples used. For B = 1 these are
the previous K samples (the classical LPC predictor). For B > 1, sample (s, i)
may only use what its context allows (docs/design.md, subscale dependencies):
its own row's past and the earlier rows up to the future horizon; `offsets`
takes the K allowed samples nearest in time, so each row gets its own
predictor, solved once per frame and row, and the prediction
p = sum_k a_k x[t + d_k] costs K multiply-adds per sample. The coefficients
depend only on the mel, so training and sampling compute the same prediction
from the same samples, and the dependency structure is unchanged.

With pre-emphasis the model predicts y[t] = x[t] - a x[t - 1], whose power
spectrum is the original's times |1 - a e^{-jw}|^2; the analysis applies that
gain.
"""

import functools

import jax.numpy as jnp
import librosa
import numpy as np

# White-noise correction (added to r(0) = 1) and a Gaussian lag window of
# LAG_WINDOW_HZ bandwidth: the usual conditioning of LPC normal equations.
NOISE_FLOOR = 1e-3
LAG_WINDOW_HZ = 60.0


@functools.lru_cache(maxsize=None)
def offsets(factor, future_horizon, order):
    """The K = `order` allowed samples nearest to each row's sample.

    Sample (s, i) may use its own row's columns i + c, c < 0 (offset B c), and
    earlier rows s - o, o >= 1, at columns i + c, c <= F (offset B c - o).
    Nearest first; a past sample before a future one at the same distance.

    Returns:
      (rows_back int [B, K] o, columns int [B, K] c, offsets int [B, K] d).
    """
    rows_back = np.zeros((factor, order), np.int64)
    columns = np.zeros((factor, order), np.int64)
    for s in range(factor):
        candidates = [(0, -k) for k in range(1, order + 1)]
        for o in range(1, s + 1):
            candidates += [(o, c) for c in range(-order, future_horizon + 1)]
        candidates.sort(key=lambda oc: (abs(factor * oc[1] - oc[0]), oc[1] > 0))
        for k, (o, c) in enumerate(candidates[:order]):
            rows_back[s, k], columns[s, k] = o, c
    return rows_back, columns, factor * columns - rows_back


def reach(factor, future_horizon, order):
    """(columns before, columns after) the predictor reads around a column."""
    if not order:
        return 0, 0
    _, columns, _ = offsets(factor, future_horizon, order)
    return int(max(0, -columns.min())), int(max(0, columns.max()))


def history_columns(factor, future_horizon, order):
    """Columns of each row the sampler keeps so that every offset is held.

    Row s - o has written columns up to i + o (F + 1) - 1 when row s works on
    column i, so reading its column i + c needs o (F + 1) - c columns.
    """
    rows_back, columns, _ = offsets(factor, future_horizon, order)
    return int((rows_back * (future_horizon + 1) - columns).max()) + 1


@functools.lru_cache(maxsize=None)
def mel_to_bins(sample_rate, n_fft, n_mels, fmin, fmax):
    """[m, n_fft // 2 + 1]: a frame's FFT bin magnitudes from its mel
    magnitudes, each bin the normalised weighted mean of the bands that
    cover it (numpy constant)."""
    bank = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax
    )
    weight = bank.sum(axis=0)
    return (bank / np.maximum(weight, 1e-8)[None, :]).astype(np.float32)


def power_spectrum(log_mel, to_bins):
    """A frame's FFT bin powers from its log-mel: [..., m] -> [..., bins]
    (`to_bins` from `mel_to_bins`)."""
    return (jnp.exp(log_mel.astype(jnp.float32)) @ to_bins) ** 2


def autocorrelation_basis(n_fft, lags, gain=None):
    """[n_fft // 2 + 1, len(lags)]: a one-sided power spectrum times this is
    its autocorrelation at `lags` (an inverse cosine transform; `gain`
    [bins] multiplies the spectrum first)."""
    bins = n_fft // 2 + 1
    multiplicity = np.full(bins, 2.0)
    multiplicity[[0, -1]] = 1.0
    if gain is not None:
        multiplicity = multiplicity * gain
    basis = np.cos(np.outer(np.arange(bins), lags) * 2.0 * np.pi / n_fft)
    return multiplicity[:, None] * basis


@functools.lru_cache(maxsize=None)
def _analysis(sample_rate, n_fft, n_mels, fmin, fmax, pre_emphasis, lags):
    """(mel -> FFT bin magnitudes [m, bins], power -> lag-windowed
    autocorrelation [bins, lags]) as numpy constants."""
    to_bins = mel_to_bins(sample_rate, n_fft, n_mels, fmin, fmax)
    bins = n_fft // 2 + 1
    w = np.pi * np.arange(bins) / (bins - 1)
    gain = np.abs(1.0 - pre_emphasis * np.exp(-1j * w)) ** 2
    lag = np.arange(lags)
    window = np.exp(-0.5 * (2.0 * np.pi * LAG_WINDOW_HZ * lag / sample_rate) ** 2)
    basis = autocorrelation_basis(n_fft, lag, gain) * window[None, :]
    return to_bins, basis.astype(np.float32)


def coefficients(cfg, log_mel):
    """Predictor coefficients of every frame and row.

    Args:
      cfg: models.ModelConfig (feature fields, B, F, lp_order, pre_emphasis).
      log_mel: [..., f, m] natural-log magnitude mel (`audio.mel`).

    Returns:
      float32 [..., f, B, K] coefficients a of `offsets`.
    """
    _, _, d = offsets(cfg.subscale_factor, cfg.future_horizon, cfg.lp_order)
    lags = int(np.abs(d[:, :, None] - d[:, None, :]).max()) + 1
    to_bins, basis = _analysis(
        cfg.sample_rate,
        cfg.n_fft,
        cfg.n_mels,
        cfg.fmin,
        cfg.fmax,
        cfg.pre_emphasis,
        max(lags, int(np.abs(d).max()) + 1),
    )
    r = power_spectrum(log_mel, to_bins) @ basis  # [..., f, lags]
    r = r / jnp.maximum(r[..., :1], 1e-20)
    system = r[..., np.abs(d[:, :, None] - d[:, None, :])]  # [..., f, B, K, K]
    system = system + NOISE_FLOOR * np.eye(d.shape[1], dtype=np.float32)
    target = r[..., np.abs(d)]  # [..., f, B, K]
    return solve_positive_definite(system, target)


def solve_positive_definite(system, target):
    """x with system x = target, for many small symmetric positive definite
    systems: [..., K, K], [..., K] -> [..., K].

    Gaussian elimination without pivoting (stable for positive definite
    matrices), unrolled over the K pivots and vectorised over the batch: a
    generic batched LU solves thousands of 16 x 16 systems one small LAPACK
    call at a time, which took a tenth of a training step.
    """
    a = jnp.concatenate([system, target[..., None]], axis=-1)  # [..., K, K + 1]
    k = system.shape[-1]
    for i in range(k):
        pivot = a[..., i : i + 1, :] / a[..., i : i + 1, i : i + 1]
        a = a - a[..., :, i : i + 1] * pivot
        a = a.at[..., i : i + 1, :].set(pivot)
    return a[..., :, k]
