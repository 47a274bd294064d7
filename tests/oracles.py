"""Test oracles: which samples the subscale model may read, from the paper.

These state the dependency structure of docs/design.md, "Subscale
dependencies", independently of the model code, so that the tests can check
the model against them. Times are original time indices (numpy arrays or ints).
"""

from subscale import folding


def context_window(i, lookback, future_horizon):
    """Columns (first, last) that the context network reads in earlier rows for
    column i: [i - W, i + F]."""
    return i - lookback, i + future_horizon


def in_context_window(p, q, factor, lookback, future_horizon):
    """Whether p lies in the context network's window of q (original times).

    The window of q = (s, i) is the earlier rows z < s at columns i - W .. i + F.
    """
    z, k = folding.grid_position(p, factor)
    s, i = folding.grid_position(q, factor)
    first, last = context_window(i, lookback, future_horizon)
    return (z < s) & (k >= first) & (k <= last)


def may_depend(p, q, factor, future_horizon):
    """Whether the distribution of sample q may depend on sample p (original times).

    q = (s, i) may see its own row's past (z = s, k < i) and the earlier rows
    z < s up to the future horizon (k <= i + F): the paper's factorisation (its
    Eq. 4) cut at F, docs/design.md, "Subscale dependencies". The context network
    reads only the window [i - W, i + F] of the earlier rows directly; older
    columns reach q only through its own row's recurrent state, which saw them
    when it generated its own past. Every allowed p is generated strictly before
    q on the wavefront.
    """
    z, k = folding.grid_position(p, factor)
    s, i = folding.grid_position(q, factor)
    own_past = (z == s) & (k < i)
    earlier_rows = (z < s) & (k <= i + future_horizon)
    return own_past | earlier_rows
