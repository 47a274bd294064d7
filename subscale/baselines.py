"""Baselines to compare Subscale WaveRNN against: fold-and-crossfade, Griffin-Lim.

Notation: f mel frames, m mel bands, hop samples per frame, N chunks.

Fold-and-crossfade batching (docs/design.md, "Other batching") is how the most used
PyTorch WaveRNN generates one utterance in parallel: cut it into N contiguous chunks
that overlap their neighbours, generate all chunks as one batch with a plain
(B = 1) WaveRNN, each from a zero state, and crossfade the overlaps linearly.
Here the cut is made on mel frames (`chunk_bounds`): core boundaries
c_k = round(k f / N), and chunk k keeps frames [c_k - o_l, c_{k+1} + o_r) with
o_l = o // 2 and o_r = o - o_l for an overlap of o frames (not before the first
chunk nor after the last), so neighbouring chunks share exactly o frames,
centred on the seam c_k. Each chunk is generated with `margin` more real mel
frames on each side, whose samples are dropped: the conditioning network then
sees real neighbouring frames at the kept part's ends, as in the PyTorch port,
which folds conditioning computed over the whole utterance.

Griffin-Lim inverts the same log-mel features the vocoders are given: magnitude
mel -> linear magnitude (NNLS, `librosa.feature.inverse.mel_to_stft`) -> phase
by Griffin-Lim, i.e. `librosa.feature.inverse.mel_to_audio` split in two so the
random phase initialisation takes a seed.
"""

import librosa
import numpy as np
import scipy.special

from subscale import audio
from subscale import models


def chunk_bounds(num_frames, num_chunks, overlap):
    """Frame ranges kept from each chunk of a fold-and-crossfade generation.

    Args:
      num_frames: f, frames of the utterance.
      num_chunks: N.
      overlap: o, frames shared by neighbouring chunks.

    Returns:
      (bounds, seams): bounds is [(start, end)] per chunk, the frames it
      contributes; consecutive chunks overlap by exactly `overlap` frames and
      together cover [0, f). seams is [N - 1] floats, the centre of each
      overlap in frames (c_k, plus half a frame when o is odd).

    Raises:
      ValueError: a chunk's core is shorter than the overlap (or empty).
    """
    if num_chunks < 1 or overlap < 0:
        raise ValueError(f"num_chunks={num_chunks}, overlap={overlap}")
    cores = [round(k * num_frames / num_chunks) for k in range(num_chunks + 1)]
    shortest = min(b - a for a, b in zip(cores[:-1], cores[1:]))
    if shortest < max(overlap, 1):
        raise ValueError(
            f"{num_frames} frames in {num_chunks} chunks: cores of {shortest} "
            f"frames, fewer than the overlap of {overlap} (or empty)"
        )
    left, right = overlap // 2, overlap - overlap // 2
    bounds = []
    for k in range(num_chunks):
        start = cores[k] - left if k > 0 else 0
        end = cores[k + 1] + right if k < num_chunks - 1 else num_frames
        bounds.append((start, end))
    seams = [(bounds[k][0] + bounds[k - 1][1]) / 2 for k in range(1, num_chunks)]
    return bounds, seams


def crossfade(pieces, starts, length):
    """Joins overlapping pieces with linear crossfades over each overlap.

    Piece k covers samples [starts[k], starts[k] + len(pieces[k])). Over the
    overlap of pieces k - 1 and k, piece k fades in with weights (n + 1/2) / L,
    n = 0 .. L - 1, and piece k - 1 fades out with one minus that, so the
    weights sum to one everywhere.

    Args:
      pieces: list of float [t_k].
      starts: their first sample, increasing.
      length: samples of the result; the pieces must cover [0, length) without
        gaps, and only neighbours may overlap.

    Returns:
      float32 [length].

    Raises:
      ValueError: the pieces leave a gap, overrun `length`, or a piece overlaps
        more than its neighbours.
    """
    ends = [s + p.shape[0] for s, p in zip(starts, pieces)]
    if starts[0] != 0 or ends[-1] != length:
        raise ValueError(f"pieces span [{starts[0]}, {ends[-1]}), not [0, {length})")
    for k in range(1, len(pieces)):
        if starts[k] > ends[k - 1]:
            raise ValueError(f"gap between pieces {k - 1} and {k}")
        if k >= 2 and starts[k] < ends[k - 2]:
            raise ValueError(f"piece {k} overlaps piece {k - 2}")
    out = np.zeros(length, np.float64)
    for k, (piece, start, end) in enumerate(zip(pieces, starts, ends)):
        weight = np.ones(piece.shape[0])
        if k > 0:
            fade = ends[k - 1] - start
            weight[:fade] = (np.arange(fade) + 0.5) / fade
        if k < len(pieces) - 1:
            fade = end - starts[k + 1]
            weight[piece.shape[0] - fade :] *= 1.0 - (np.arange(fade) + 0.5) / fade
        out[start:end] += weight * piece
    return out.astype(np.float32)


def fold_and_crossfade(
    sample_fn,
    params,
    mel,
    key,
    hop_length,
    num_chunks,
    overlap,
    margin=models.MEL_PAD,
):
    """Generates an utterance as N chunks in one batch, crossfaded at the seams.

    Args:
      sample_fn: a B = 1 `sample_fn(params, mel [N, f, m], key, lengths)` from
        `sampling.make_sample_fn` (e.g. `Vocoder.sample_fn`).
      params: its parameters.
      mel: [f, m] log-mel of the utterance.
      key: PRNG key; chunk k uses fold_in(key, k).
      hop_length: samples per frame.
      num_chunks: N.
      overlap: frames shared by neighbouring chunks (`chunk_bounds`).
      margin: extra real mel frames generated on each side of a chunk and
        dropped, so its conditioning does not see silence at the kept ends.

    Returns:
      (float32 [f * hop] waveform, [N - 1] seam positions in samples).
    """
    mel = np.asarray(mel, np.float32)
    frames = mel.shape[0]
    bounds, seams = chunk_bounds(frames, num_chunks, overlap)
    spans = [(max(0, a - margin), min(frames, b + margin)) for a, b in bounds]
    lengths = np.array([b - a for a, b in spans], np.int32)
    batch = np.full(
        (num_chunks, lengths.max(), mel.shape[1]), audio.LOG_MEL_FLOOR, np.float32
    )
    for k, (a, b) in enumerate(spans):
        batch[k, : b - a] = mel[a:b]
    out = np.asarray(sample_fn(params, batch, key, lengths))
    pieces = [
        audio.to_float(out[k, (a - s) * hop_length : (b - s) * hop_length])
        for k, ((a, b), (s, _)) in enumerate(zip(bounds, spans))
    ]
    wave = crossfade(pieces, [a * hop_length for a, _ in bounds], frames * hop_length)
    return wave, [seam * hop_length for seam in seams]


def griffin_lim(log_mel, mel_cfg, n_iter=32, seed=0):
    """Waveform whose `audio.mel` approximates `log_mel`, by Griffin-Lim.

    Args:
      log_mel: [f, m] natural-log magnitude mel from `audio.mel`.
      mel_cfg: audio.MelConfig it was computed with.
      n_iter: Griffin-Lim iterations.
      seed: seed of the random initial phase.

    Returns:
      float32 [f * hop] in [-1, 1].
    """
    hop = mel_cfg.hop_length
    frames = log_mel.shape[0]
    magnitude = librosa.feature.inverse.mel_to_stft(
        np.exp(np.asarray(log_mel, np.float64)).T,
        sr=mel_cfg.sample_rate,
        n_fft=mel_cfg.n_fft,
        power=1.0,
        fmin=mel_cfg.fmin,
        fmax=mel_cfg.fmax,
    )
    # `audio.mel` analyses x[hop // 2:], so the inversion is that signal.
    y = librosa.griffinlim(
        magnitude,
        n_iter=n_iter,
        hop_length=hop,
        win_length=mel_cfg.win_length,
        n_fft=mel_cfg.n_fft,
        center=True,
        pad_mode="constant",
        length=frames * hop - hop // 2,
        random_state=seed,
    )
    y = np.concatenate([np.zeros(hop // 2), y])
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def lpc_bits(samples, order=16, frame=320, distribution="laplace"):
    """Bits per sample of a classical forward-adaptive LPC coder (a reference NLL).

    The waveform is cut into frames of `frame` samples (20 ms at 16 kHz). Each
    frame gets its own order-`order` predictor, fitted (Burg, `librosa.lpc`) on
    a Hann window of twice the frame centred on it, and its own residual scale
    (the maximum-likelihood scale of the frame's residual). Predictions use the
    true past samples (zeros before the first one, as the vocoders' zero
    state); the residual is coded with the chosen distribution discretised to
    integers. The predictor and scale are fitted on the very samples they code
    and their side information is free, so this is an optimistic LPC figure:
    a vocoder below it predicts better than per-frame linear prediction.

    Args:
      samples: int16 [t] waveform.
      order: predictor order.
      frame: samples per frame.
      distribution: "laplace" or "gaussian" residual model.

    Returns:
      float64 [t] bits per sample.
    """
    x = np.asarray(samples, np.float64)
    t = x.shape[0]
    history = np.concatenate([np.zeros(order), x])
    # past[n, j] = x[n - 1 - j] (zeros before the start).
    past = np.lib.stride_tricks.sliding_window_view(history[:-1], order)[:, ::-1]
    bits = np.empty(t)
    window = np.hanning(2 * frame)
    for start in range(0, t, frame):
        stop = min(start + frame, t)
        lo = max(0, start - frame // 2)
        segment = x[lo : lo + 2 * frame]
        segment = segment * window[: len(segment)]
        if np.any(segment):
            a = librosa.lpc(segment, order=order)
        else:
            a = np.zeros(order + 1)
        a = np.nan_to_num(a)
        residual = x[start:stop] + past[start:stop] @ a[1:]
        bits[start:stop] = -np.log2(_integer_probability(residual, distribution))
    return bits


def _integer_probability(residual, distribution):
    """P(integer residual) under a zero-mean model fitted to `residual`."""
    if distribution == "laplace":
        scale = max(np.mean(np.abs(residual)), 0.5)

        def cdf(v):
            return np.where(
                v < 0, 0.5 * np.exp(v / scale), 1.0 - 0.5 * np.exp(-v / scale)
            )

    elif distribution == "gaussian":
        scale = max(np.sqrt(np.mean(residual**2)), 0.5)

        def cdf(v):
            return 0.5 * (1.0 + scipy.special.erf(v / (scale * np.sqrt(2.0))))

    else:
        raise ValueError(f"distribution must be laplace or gaussian: {distribution!r}")
    p = cdf(residual + 0.5) - cdf(residual - 0.5)
    return np.maximum(p, 2.0**-32)
