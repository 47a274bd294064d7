"""Objective quality metrics of generated speech against the original.

Notation: t samples, f mel frames, m mel bands, hop samples per frame, d
cepstral coefficients.

Every metric compares two time-aligned waveforms of the same utterance (a
vocoder output has the original's timing, so no alignment is needed). The
frame-based ones work on `audio.mel` features, whose frame j describes samples
[j * hop, (j + 1) * hop), and take an optional boolean frame mask [f] to score
part of an utterance, e.g. the frames near the seams of a chunked generation
(`near_mask`).

Definitions:

- Log-mel distance (dB): per frame, the RMS over bands of the difference of the
  two magnitude mels in dB, 20 log10(m_ref / m_est) (magnitudes floored at
  `audio.MEL_MAGNITUDE_FLOOR`, -100 dB); then the mean over frames.
- Mel-cepstral distortion (MCD, dB): the cepstrum of a frame is the DCT-II of its
  natural-log magnitude mel, scaled like the real cepstrum of a spectrum of m
  bins, c_k = (1 / m) sum_j ln m_j cos(pi k (j + 1/2) / m). Per frame
  MCD = (10 / ln 10) sqrt(2 sum_{k=1..d} (c_k - c'_k)^2), without the energy
  term c_0; then the mean over frames. This is the usual MCD formula, applied to
  a mel-filterbank cepstrum instead of an all-pass-warped (SPTK) mel-cepstrum,
  so values compare within this project, and only roughly with published ones.
- F0 error: pYIN F0 tracks (`librosa.pyin`, one frame per hop, aligned like the
  mel frames) of both signals; the RMS difference in cents over frames voiced in
  both, and the share of frames where exactly one of the two is voiced.
- Loudness: the level of each mel frame's block of samples, 10 log10 of its
  mean square (floored at -100 dB). `loudness_correlation` is the Pearson
  correlation of the two level tracks over frames (1: the generated loudness
  follows the original's); `quiet_excess_db` is the mean of generated minus
  original level over the original's quietest `QUIET_SHARE` of frames (pauses,
  closures and fades: where a free-running model's noise shows most; 0 or
  below is ideal).
- STOI (the `pystoi` package) and wideband PESQ (ITU-T P.862.2, the optional
  `pesq` package, 16 kHz: `pip install -e '.[experiments]'`); `stoi` and
  `pesq_wb` return None when the signal is too short or silent for them, and
  `pesq_wb` also when `pesq` is not installed.
"""

import math
import warnings

import librosa
import numpy as np
import pystoi
from absl import logging

try:
    import pesq
except ImportError:
    pesq = None

PESQ_RATE = 16_000
# 20 log10(x) = DB_PER_NEPER ln(x).
DB_PER_NEPER = 20.0 / math.log(10.0)
MCD_COEFFICIENTS = 24
F0_MIN_HZ = 65.0
F0_MAX_HZ = 500.0
LEVEL_FLOOR_DB = -100.0
QUIET_SHARE = 0.2


def _masked_mean(per_frame, mask):
    """Mean of per-frame values [f] over `mask` [f] (all if None); NaN if empty."""
    if mask is not None:
        per_frame = per_frame[np.asarray(mask, bool)]
    if per_frame.size == 0:
        return float("nan")
    return float(per_frame.mean())


def _check_pair(ref, est):
    if ref.shape != est.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, estimate {est.shape}")


def log_mel_distance(ref_mel, est_mel, mask=None):
    """Log-mel distance in dB (see the module docstring).

    Args:
      ref_mel: [f, m] natural-log magnitude mel of the original (`audio.mel`).
      est_mel: [f, m] the same of the estimate.
      mask: optional bool [f], the frames to score.

    Returns:
      Mean over the masked frames of the per-frame RMS dB difference (NaN if
      the mask selects no frame).
    """
    _check_pair(ref_mel, est_mel)
    diff = DB_PER_NEPER * (np.asarray(ref_mel, np.float64) - est_mel)
    return _masked_mean(np.sqrt(np.mean(diff**2, axis=-1)), mask)


BAND_THIRDS = ("low", "mid", "high")


def band_bias_db(ref_mel, est_mel):
    """Per-band log-mel bias: how much louder the estimate is, in dB, averaged
    over the frames and the bands of each third of the mel bands (lowest,
    middle, highest). Where the log-mel distance lies, with its sign: excess
    noise between the harmonics shows as a positive low third.

    Args:
      ref_mel, est_mel: [f, m] natural-log magnitude mels.

    Returns:
      {"low": dB, "mid": dB, "high": dB}.
    """
    _check_pair(ref_mel, est_mel)
    diff = DB_PER_NEPER * (np.asarray(est_mel, np.float64) - ref_mel)
    thirds = np.array_split(np.arange(diff.shape[-1]), len(BAND_THIRDS))
    return {
        name: float(diff[:, bands].mean()) for name, bands in zip(BAND_THIRDS, thirds)
    }


def mel_cepstrum(log_mel, num_coefficients=MCD_COEFFICIENTS):
    """Cepstra [f, d + 1] (c_0 .. c_d) of natural-log magnitude mel frames [f, m]."""
    bands = log_mel.shape[-1]
    k = np.arange(num_coefficients + 1)[:, None]
    j = np.arange(bands)[None, :]
    basis = np.cos(np.pi * k * (j + 0.5) / bands) / bands  # [d + 1, m]
    return np.asarray(log_mel, np.float64) @ basis.T


def mel_cepstral_distortion(
    ref_mel, est_mel, mask=None, num_coefficients=MCD_COEFFICIENTS
):
    """MCD in dB over coefficients 1..d (see the module docstring).

    Args:
      ref_mel: [f, m] natural-log magnitude mel of the original.
      est_mel: [f, m] the same of the estimate.
      mask: optional bool [f], the frames to score.
      num_coefficients: d, cepstral coefficients compared (c_0 excluded).

    Returns:
      Mean MCD over the masked frames (NaN if none).
    """
    _check_pair(ref_mel, est_mel)
    diff = mel_cepstrum(ref_mel, num_coefficients) - mel_cepstrum(
        est_mel, num_coefficients
    )
    per_frame = (10.0 / math.log(10.0)) * np.sqrt(2.0 * np.sum(diff[:, 1:] ** 2, -1))
    return _masked_mean(per_frame, mask)


def f0_track(x, sample_rate, hop_length, fmin=F0_MIN_HZ, fmax=F0_MAX_HZ):
    """pYIN F0 of each mel frame.

    Args:
      x: float [t] waveform.
      sample_rate: Hz.
      hop_length: samples per frame; frame j is centred on sample
        j * hop + hop // 2, as in `audio.mel`.
      fmin: lowest F0 searched, Hz.
      fmax: highest F0 searched, Hz.

    Returns:
      (f0 float [t // hop] in Hz, NaN where unvoiced; voiced bool [t // hop]).
    """
    frames = x.shape[0] // hop_length
    # pYIN needs a few periods of the lowest F0 per frame.
    frame_length = 1 << int(math.ceil(math.log2(4 * sample_rate / fmin)))
    y = np.asarray(x[hop_length // 2 :], np.float32)
    y = np.pad(y, (0, max(frame_length - y.shape[0], 0)))
    f0, voiced, _ = librosa.pyin(
        y,
        fmin=fmin,
        fmax=fmax,
        sr=sample_rate,
        frame_length=frame_length,
        hop_length=hop_length,
        center=True,
    )
    f0 = np.pad(f0[:frames], (0, max(frames - f0.shape[0], 0)), constant_values=np.nan)
    voiced = np.pad(voiced[:frames], (0, max(frames - voiced.shape[0], 0)))
    return f0.astype(np.float64), voiced.astype(bool)


def f0_error(ref_track, est_track, mask=None):
    """F0 RMSE in cents on frames voiced in both, and the voicing disagreement.

    Args:
      ref_track: (f0, voiced) of the original, from `f0_track`.
      est_track: (f0, voiced) of the estimate.
      mask: optional bool [f], the frames to score.

    Returns:
      dict(f0_rmse_cents: float, NaN when no frame is voiced in both;
           voicing_disagreement: share of frames voiced in exactly one;
           voiced_frames: frames voiced in both).
    """
    ref_f0, ref_voiced = ref_track
    est_f0, est_voiced = est_track
    _check_pair(ref_f0, est_f0)
    keep = np.ones(ref_f0.shape, bool) if mask is None else np.asarray(mask, bool)
    both = keep & ref_voiced & est_voiced
    cents = 1200.0 * np.log2(est_f0[both] / ref_f0[both])
    rmse = float(np.sqrt(np.mean(cents**2))) if cents.size else float("nan")
    disagree = ref_voiced[keep] != est_voiced[keep]
    return dict(
        f0_rmse_cents=rmse,
        voicing_disagreement=float(disagree.mean()) if keep.any() else float("nan"),
        voiced_frames=int(both.sum()),
    )


def frame_levels(x, hop_length):
    """Level in dB of each block of `hop_length` samples: float [t] -> [t // hop]."""
    frames = x.shape[0] // hop_length
    blocks = np.asarray(x[: frames * hop_length], np.float64).reshape(frames, -1)
    power = np.mean(blocks**2, axis=-1)
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), LEVEL_FLOOR_DB)


def loudness_correlation(ref, est, hop_length):
    """Pearson correlation of the frame levels of two waveforms [t] (NaN when
    either is constant)."""
    _check_pair(ref, est)
    a, b = frame_levels(ref, hop_length), frame_levels(est, hop_length)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def quiet_excess_db(ref, est, hop_length, share=QUIET_SHARE):
    """Mean level of `est` minus that of `ref` (dB) over the quietest `share`
    of `ref`'s frames (at least one frame)."""
    _check_pair(ref, est)
    a, b = frame_levels(ref, hop_length), frame_levels(est, hop_length)
    if a.size == 0:
        return float("nan")
    quiet = np.argsort(a, kind="stable")[: max(1, int(round(share * a.size)))]
    return float(np.mean(b[quiet] - a[quiet]))


def _at_rate(x, sample_rate, rate):
    x = np.asarray(x, np.float32)
    if sample_rate == rate:
        return x
    return librosa.resample(x, orig_sr=sample_rate, target_sr=rate)


def pesq_wb(ref, est, sample_rate):
    """Wideband PESQ (MOS-LQO, about 1.0 to 4.64) at 16 kHz, or None.

    None when the `pesq` package is missing or it finds no speech in `ref`.
    """
    if pesq is None:
        return None
    try:
        return float(
            pesq.pesq(
                PESQ_RATE,
                _at_rate(ref, sample_rate, PESQ_RATE),
                _at_rate(est, sample_rate, PESQ_RATE),
                "wb",
            )
        )
    except pesq.PesqError as e:
        logging.warning("PESQ not computed: %s", e)
        return None


def stoi(ref, est, sample_rate):
    """Short-time objective intelligibility (0 to 1), or None.

    None when `ref` has less than the 384 ms of non-silent audio STOI needs.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = pystoi.stoi(np.asarray(ref), np.asarray(est), sample_rate)
    # pystoi warns and returns 1e-5 instead of raising when the audio is short.
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        logging.warning("STOI not computed: too little non-silent audio.")
        return None
    return float(value)


def near_mask(num_frames, centres, radius, hop_length):
    """Frames whose centre lies within `radius` samples of any of `centres`.

    Args:
      num_frames: f.
      centres: sample positions, e.g. the seams of a chunked generation.
      radius: half-width of each window in samples.
      hop_length: samples per frame; frame j is centred on j * hop + hop / 2.

    Returns:
      bool [f].
    """
    frame_centres = np.arange(num_frames) * hop_length + hop_length / 2.0
    centres = np.asarray(centres, np.float64).reshape(-1)
    if centres.size == 0:
        return np.zeros(num_frames, bool)
    distance = np.abs(frame_centres[:, None] - centres[None, :]).min(axis=1)
    return distance <= radius


def available():
    """Which optional metrics can run here: dict(pesq=bool, stoi=bool)."""
    return dict(pesq=pesq is not None, stoi=True)
