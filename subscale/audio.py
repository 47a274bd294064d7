"""Audio in and out: loading, log-mel features and the 16-bit coarse/fine split.

Notation: t samples, f mel frames, hop samples per frame.

Waveforms are float32 in [-1, 1] or int16. The model predicts a 16-bit sample as
two 8-bit classes of its offset-binary value u = sample + 32768: coarse = u // 256
(the high byte) and fine = u % 256 (the low byte). `split`, `join`, `scale`,
`to_int16` and `to_float` use only `astype` and arithmetic, so they work on numpy
arrays and on jax arrays inside `jit` alike.

Mel frames are aligned to hops: frame j describes samples [j * hop, (j + 1) * hop)
and its analysis window is centred on the middle of that block, sample
j * hop + hop // 2. A waveform of t samples has exactly t // hop frames, so
frames * hop <= t; the last t % hop samples have no frame of their own.
"""

import dataclasses
import math
import os

import librosa
import numpy as np
import soundfile

from subscale import errors
from subscale import files

# Log-mel of silence: the floor of log(max(m, 1e-5)), used to pad mel frames.
MEL_MAGNITUDE_FLOOR = 1e-5
LOG_MEL_FLOOR = math.log(MEL_MAGNITUDE_FLOOR)
# The values a log-mel of another scale is told apart by: `mel` of audio in
# [-1, 1] lies in [LOG_MEL_FLOOR, about 2.5], so a mel far outside is in dB,
# of power, or from another front end (with room for a model's own predictions).
LOG_MEL_LIMITS = (LOG_MEL_FLOOR - 3.0, 8.0)


@dataclasses.dataclass(frozen=True)
class MelConfig:
    """Log-mel analysis parameters (the fields of the same name in `config.data`).

    Attributes:
      sample_rate: Hz of the waveform.
      n_fft: FFT size.
      hop_length: samples per frame.
      win_length: Hann window length in samples, at most `n_fft`.
      n_mels: mel bands.
      fmin: lowest band edge in Hz.
      fmax: highest band edge in Hz, at most half the sample rate.
    """

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float

    def __post_init__(self):
        for name in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            if getattr(self, name) <= 0:
                raise errors.SubscaleError(
                    f"data.{name}={getattr(self, name)}: must be positive"
                )
        if self.win_length > self.n_fft:
            raise errors.SubscaleError(
                f"data.win_length={self.win_length}: larger than "
                f"data.n_fft={self.n_fft}"
            )
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise errors.SubscaleError(
                f"data.fmin={self.fmin} and data.fmax={self.fmax}: must satisfy "
                f"0 <= fmin < fmax <= sample_rate / 2 = {self.sample_rate / 2}"
            )

    @classmethod
    def from_config(cls, data_config):
        """Reads the mel fields of `config.data`."""
        return cls(
            sample_rate=int(data_config.sample_rate),
            n_fft=int(data_config.n_fft),
            hop_length=int(data_config.hop_length),
            win_length=int(data_config.win_length),
            n_mels=int(data_config.n_mels),
            fmin=float(data_config.fmin),
            fmax=float(data_config.fmax),
        )


def load(path, sample_rate):
    """Reads an audio file as a mono waveform at `sample_rate`.

    Args:
      path: any file soundfile reads (wav, flac, ogg, ...).
      sample_rate: Hz to resample to (soxr) when the file differs.

    Returns:
      float32 [t] waveform; channels are averaged.

    Raises:
      SubscaleError: the file is missing, unreadable, empty or not finite.
    """
    if not os.path.isfile(path):
        raise errors.SubscaleError(f"{path}: no such audio file")
    try:
        x, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, OSError) as e:
        raise _unreadable(path, e) from e
    if x.shape[0] == 0:
        raise errors.SubscaleError(f"{path}: the audio has no samples")
    if not np.isfinite(x).all():
        raise errors.SubscaleError(f"{path}: the audio contains NaN or inf")
    x = x.mean(axis=1)
    if file_rate != sample_rate:
        x = librosa.resample(
            x, orig_sr=file_rate, target_sr=sample_rate, res_type="soxr_hq"
        )
    return x.astype(np.float32)


def file_info(path):
    """soundfile's header of an audio file (samplerate, channels, frames).

    Raises:
      SubscaleError: the file is not a readable audio file.
    """
    try:
        return soundfile.info(path)
    except (soundfile.SoundFileError, RuntimeError, OSError) as e:
        raise _unreadable(path, e) from e


def _unreadable(path, error):
    message = " ".join(str(error).split())
    return errors.SubscaleError(f"{path}: not a readable audio file ({message})")


def check_waveform(x, name):
    """Raises SubscaleError unless `x` is a non-empty finite 1-D waveform.

    Args:
      x: array from the user, expected [t].
      name: how to name it in the message (an argument or file name).
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise errors.SubscaleError(
            f"{name}: expected a 1-D waveform [t], got shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise errors.SubscaleError(f"{name}: the waveform has no samples")
    if not np.isfinite(x).all():
        raise errors.SubscaleError(f"{name}: the waveform contains NaN or inf")


def to_int16(x):
    """float [..] in [-1, 1] -> int16 [..], rounded and clipped."""
    return (x * 32768.0).round().clip(-32768, 32767).astype(np.int16)


def to_float(x):
    """int16 [..] -> float32 [..] = x / 32768, in [-1, 1)."""
    return x.astype(np.float32) / 32768.0


def split(samples):
    """int16 samples [..] -> (coarse int32 [..], fine int32 [..]), each in [0, 256).

    The offset-binary value u = samples + 32768 is split into its high byte
    coarse = u // 256 and its low byte fine = u % 256.
    """
    u = samples.astype(np.int32) + 32768
    return u // 256, u % 256


def join(coarse, fine):
    """Inverse of `split`: (coarse [..], fine [..]) -> int16 samples [..]."""
    u = coarse.astype(np.int32) * 256 + fine.astype(np.int32)
    return (u - 32768).astype(np.int16)


def scale(bits):
    """8-bit classes [..] in [0, 255] -> float32 [..] in [-1, 1]."""
    return bits.astype(np.float32) / 127.5 - 1.0


def mel(x, cfg):
    """Natural-log magnitude mel spectrogram, one frame per hop.

    Frame j describes samples [j * hop, (j + 1) * hop): its window is centred on
    sample j * hop + hop // 2 (zero padding beyond the ends of `x`).

    Args:
      x: float32 [t] waveform.
      cfg: MelConfig.

    Returns:
      float32 [t // hop, n_mels], log(max(magnitude mel, 1e-5)).
    """
    hop = cfg.hop_length
    frames = x.shape[0] // hop
    if frames == 0:
        return np.zeros((0, cfg.n_mels), np.float32)
    # librosa centres frame j on sample j * hop of its input; dropping the first
    # hop // 2 samples moves that centre to the middle of block j.
    y = np.asarray(x[hop // 2 :], np.float32)
    # Zeros past the end change nothing (librosa pads with zeros too) but spare
    # librosa's warning about inputs shorter than n_fft.
    y = np.pad(y, (0, max(cfg.n_fft - y.shape[0], 0)))
    m = librosa.feature.melspectrogram(
        y=y,
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=hop,
        win_length=cfg.win_length,
        center=True,
        pad_mode="constant",
        power=1.0,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
    )
    m = np.log(np.maximum(m[:, :frames], MEL_MAGNITUDE_FLOOR))
    return m.T.astype(np.float32)


# Pre-emphasis works in integers: the coefficient is rounded to a multiple of
# 1 / EMPHASIS_ONE, so that filtering and its inverse are exact inverses on
# numpy and in jitted code alike.
EMPHASIS_ONE = 1024


def emphasis_prediction(previous, coeff):
    """round(coeff x[t - 1]) in integers: int [..] -> int [..] (numpy or jax)."""
    q = int(round(coeff * EMPHASIS_ONE))
    return (q * previous + EMPHASIS_ONE // 2) // EMPHASIS_ONE


def pre_emphasis(samples, coeff):
    """y[t] = x[t] - round(coeff x[t - 1]) (x[-1] = 0), clipped to int16.

    The model of a config with `data.pre_emphasis` learns and draws y; its mel
    is still that of x, and the sampler turns y back into x
    (`sampling.de_emphasis`, exact unless y was clipped). The filter has
    determinant one, so bits per sample of y and of x compare.

    Args:
      samples: int16 [..., t].
      coeff: the coefficient, in [0, 1); 0 returns `samples`.

    Returns:
      int16 [..., t].
    """
    if not coeff:
        return samples
    x = np.asarray(samples, np.int64)
    previous = np.concatenate([np.zeros_like(x[..., :1]), x[..., :-1]], axis=-1)
    y = x - emphasis_prediction(previous, coeff)
    return np.clip(y, -32768, 32767).astype(np.int16)


def pad_mel(m, pad):
    """Adds `pad` silent frames (LOG_MEL_FLOOR) at each end.

    Args:
      m: [f, n_mels] log-mel.
      pad: frames added before and after.

    Returns:
      [f + 2 * pad, n_mels].
    """
    return np.pad(m, ((pad, pad), (0, 0)), constant_values=LOG_MEL_FLOOR)


def write_wav(path, x, sample_rate, format="WAV"):
    """Writes 16-bit PCM audio atomically, a wav file unless `format` says.

    Args:
      path: destination.
      x: float32 [t] in [-1, 1] (rounded and clipped to 16 bits) or int16 [t].
      sample_rate: Hz.
      format: soundfile's container: "WAV", or "FLAC" (lossless, half the size).
    """
    x = np.asarray(x)
    if x.dtype != np.int16:
        x = to_int16(x.astype(np.float32))
    files.atomic_write(
        path,
        lambda tmp: soundfile.write(
            tmp, x, sample_rate, subtype="PCM_16", format=format
        ),
    )
