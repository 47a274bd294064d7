"""Properties of the pure fold/unfold and index maps."""

import numpy as np
import pytest

from subscale import folding
from tests import oracles


@pytest.mark.parametrize("seed", range(20))
def test_fold_unfold_round_trip(seed):
    rng = np.random.default_rng(seed)
    factor = int(rng.integers(1, 20))
    length = int(rng.integers(1, 300))
    u = rng.normal(size=length)
    padded = np.pad(u, (0, folding.padded_length(length, factor) - length))
    x = folding.fold(padded, factor)
    assert x.shape == (factor, folding.num_columns(length, factor))
    for t in range(length):
        s, i = folding.grid_position(t, factor)
        assert x[s, i] == u[t]
        assert folding.original_time(s, i, factor) == t
    np.testing.assert_array_equal(folding.unfold(x)[:length], u)


def test_fold_other_axis_with_channels():
    u = np.arange(2 * 12 * 3).reshape(2, 12, 3)
    x = folding.fold(u, 4, axis=1)
    assert x.shape == (2, 4, 3, 3)
    np.testing.assert_array_equal(x[1, 2, 1], u[1, 4 * 1 + 2])
    np.testing.assert_array_equal(folding.unfold(x, axis=1), u)


def test_fold_rejects_unpadded_length():
    with pytest.raises(ValueError, match="multiple"):
        folding.fold(np.zeros(10), 4)


@pytest.mark.parametrize("seed", range(10))
def test_row_lengths_and_valid_mask(seed):
    rng = np.random.default_rng(seed)
    factor = int(rng.integers(1, 17))
    length = int(rng.integers(1, 200))
    cols = folding.num_columns(length, factor)
    mask = folding.valid_mask(length, factor, cols)
    assert mask.sum() == length
    np.testing.assert_array_equal(mask.sum(axis=1), folding.row_lengths(length, factor))
    lengths = np.array([length, max(1, length - 5)])
    batched = folding.valid_mask(lengths, factor, cols)
    np.testing.assert_array_equal(batched[0], mask)


@pytest.mark.parametrize("seed", range(10))
def test_wavefront_schedule(seed):
    rng = np.random.default_rng(seed)
    factor = int(rng.integers(1, 17))
    horizon = int(rng.integers(0, 6))
    cols = int(rng.integers(1, 30))
    steps = folding.num_steps(cols, factor, horizon)
    seen = np.zeros((factor, cols), int)
    for t in range(steps):
        for s in range(factor):
            i = folding.column_at_step(t, s, horizon)
            if 0 <= i < cols:
                assert folding.wavefront_step(s, i, horizon) == t
                seen[s, i] += 1
    np.testing.assert_array_equal(seen, 1)  # every position exactly once
    last = folding.wavefront_step(factor - 1, cols - 1, horizon)
    assert last == steps - 1


@pytest.mark.parametrize("seed", range(10))
def test_allowed_context_is_generated_first(seed):
    rng = np.random.default_rng(seed)
    factor = int(rng.integers(1, 9))
    horizon = int(rng.integers(0, 5))
    lookback = int(rng.integers(0, 5))
    length = factor * int(rng.integers(1, 12))
    p, q = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    allowed = oracles.may_depend(p, q, factor, horizon)
    window = oracles.in_context_window(p, q, factor, lookback, horizon)
    step = lambda t: folding.wavefront_step(  # noqa: E731
        *folding.grid_position(t, factor), horizon
    )
    assert np.all(step(p)[allowed] < step(q)[allowed])
    assert not np.any(window & ~allowed)
