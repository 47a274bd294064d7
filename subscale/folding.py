"""Subscale folding: the grid of B interleaved sub-sequences and its index maps.

Notation (docs/design.md, "Subscale dependencies"): a waveform u of length L is
folded with subscale factor B into a grid X of B rows and n = ceil(L / B) columns,

    X[s, i] = u[B * i + s],      s in [0, B), i in [0, n).

When L is not a multiple of B the waveform is padded at the end to n * B samples.
The padded positions (original time >= L) are marked invalid by `valid_mask`; every
consumer (training, `log_prob`, the sampler) feeds them to the network as the
padding value 0 and never samples them, so they carry no audio.

Generation follows a wavefront: sample (s, i) is produced at scan step
t(s, i) = i + s * (F + 1), so an utterance takes n + (B - 1)(F + 1) steps.
The context of (s, i) is its own row's past X[s, k < i] and the earlier rows
X[z < s, k] for i - W <= k <= i + F (lookback W, future horizon F).

Every function works on numpy and jax arrays alike (arithmetic, reshape and
swapaxes only), so the same maps serve tests, the input pipeline and jitted code.
"""

import numpy as np


def num_columns(length, factor):
    """Columns n of the grid for a waveform of `length` samples."""
    return -(-length // factor)


def padded_length(length, factor):
    """Length after padding to a multiple of the subscale factor."""
    return num_columns(length, factor) * factor


def num_steps(columns, factor, future_horizon):
    """Wavefront scan steps for a grid of `columns` columns: n + (B - 1)(F + 1)."""
    return columns + (factor - 1) * (future_horizon + 1)


def fold(u, factor, axis=-1):
    """Folds a time axis into (row, column).

    Args:
      u: array whose `axis` has length L, a multiple of `factor` (pad first).
      factor: the subscale factor B.
      axis: the time axis.

    Returns:
      The array with that axis replaced by [B, L // B]:
      out[..., s, i, ...] = u[..., B * i + s, ...].
    """
    axis = axis % u.ndim
    length = u.shape[axis]
    if length % factor:
        raise ValueError(f"fold: length {length} is not a multiple of B={factor}")
    split = u.reshape(u.shape[:axis] + (length // factor, factor) + u.shape[axis + 1 :])
    return split.swapaxes(axis, axis + 1)


def unfold(x, axis=-2):
    """Inverse of `fold`: axes (axis, axis + 1) = [B, n] become one axis of B * n."""
    axis = axis % x.ndim
    factor, cols = x.shape[axis], x.shape[axis + 1]
    swapped = x.swapaxes(axis, axis + 1)
    return swapped.reshape(x.shape[:axis] + (factor * cols,) + x.shape[axis + 2 :])


def original_time(s, i, factor):
    """Original time index of grid position (s, i): B * i + s."""
    return factor * i + s


def grid_position(time, factor):
    """(row s, column i) of original time index `time`."""
    return time % factor, time // factor


def wavefront_step(s, i, future_horizon):
    """Scan step at which (s, i) is generated: i + s * (F + 1)."""
    return i + s * (future_horizon + 1)


def column_at_step(step, s, future_horizon):
    """Column row s works on at scan step `step` (negative: not started yet)."""
    return step - s * (future_horizon + 1)


def row_lengths(length, factor):
    """Valid columns of each row: ceil((L - s) / B) for s in [0, B) (a list)."""
    return [max(0, -(-(length - s) // factor)) for s in range(factor)]


def valid_mask(length, factor, columns):
    """[B, columns] booleans: whether (s, i) holds a real sample (B*i + s < L).

    `length` may be an array of lengths [...] (numpy or jax, also traced), giving
    [..., B, columns].
    """
    s = np.arange(factor)[:, None]
    i = np.arange(columns)[None, :]
    time = original_time(s, i, factor)
    if hasattr(length, "shape") and getattr(length, "ndim", 0) > 0:
        return time < length[..., None, None]
    return time < length
