"""Flax modules: the WaveRNN cell, the mel conditioner and the subscale context.

Notation: b batch, t samples, f mel frames, s subscale row (B rows), n grid
columns, h hidden size (H), c channels.

One model serves every subscale factor. B = 1 is the plain WaveRNN of docs/design.md,
"The paper's model" (one row, no context network). For B > 1 the waveform is folded into
B rows (`folding.py`), all rows of all utterances run through the same cell as
one batch, and a masked context network conditions row s on the earlier rows.

The cell (docs/design.md, "The paper's model"). With x_t = [c_{t-1}, f_{t-1}]
plus conditioning:

    u = sigmoid(R_u h + I_u x + I*_u c_t)
    r = sigmoid(R_r h + I_r x + I*_r c_t)
    e = tanh(r * (R_e h) + I_e x + I*_e c_t)        # reset after R_e h
    h' = u * h + (1 - u) * e

R = [R_u | R_r | R_e] is one matmul (parameter `R`, [H, 3H], and `R_bias`).
Each gate's H units are [coarse half | fine half]; I* (parameter `I_coarse`,
[3, H/2]) feeds c_t only into the fine half of each gate, so the coarse half
y_c never sees c_t. P(c_t) = softmax(O2 relu(O1 y_c)) and
P(f_t | c_t) = softmax(O4 relu(O3 y_f)). `gru_update` is the one step function:
training applies it to whole states with c_t teacher-forced (`gru_scan`, which
adds a hand-written gradient), the sampler applies it to the coarse half,
samples c_t, then to the fine half.

Mel conditioning (our design, docs/design.md, "The paper's model"): log-mel frames are
normalised, passed through two VALID convolutions over frames (kernel 3, ReLU)
and a linear layer, giving `cond_channels` features per frame, which enter the
gates through their own input matrix I_cond. The model takes
`MEL_PAD` = 3 real neighbouring frames on each side of the frames it conditions:
the two convolutions consume two, and the third lets the upsampler interpolate
across the first and last frame. Upsampling to the sample rate is linear
interpolation between frame centres (frame j covers samples [j*hop, (j+1)*hop)),
done by gathering two frames per sample. Interpolation and I_cond are both
linear, so the sampler projects the frames once (f x 3H, not t x 3H) and
interpolates the projected frames one sample at a time.

Subscale context network (our design, docs/design.md, "Context network"). A
summary of row z at column k looks at that row's last
Lw = W + F + 1 samples, h_z(k) = relu(K * X[z, k - Lw + 1 .. k]) (one linear
layer over the window, a causal convolution in training). Row s at column i
reads h_z(i + F) of every earlier row z < s, which covers exactly columns
[i - W, i + F] of row z, and mixes them with weights that depend on the row
offset s - z (a strictly lower-triangular Toeplitz mix over rows) plus an
embedding of s. In the sampler each step computes one summary per row (the
row's newest sample) and keeps the last B (F + 1) summaries of every row in a
ring buffer, so the per-step cost does not depend on the utterance length.
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from subscale import audio
from subscale import distribution
from subscale import folding
from subscale import linear_prediction

MEL_PAD = 3
NUM_CLASSES = distribution.NUM_CLASSES
# Log-mel of speech lies roughly in [LOG_MEL_FLOOR, 2]; this maps it near [-1, 1].
_MEL_CENTER = -4.0
_MEL_SCALE = 4.0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Model hyperparameters, built once from the config and passed down."""

    hidden_size: int
    cond_channels: int
    n_mels: int
    hop_length: int
    subscale_factor: int = 1
    future_horizon: int = 0
    lookback: int = 0
    context_summary: int = 64
    context_channels: int = 128
    neighbour_rows: int = 0
    fine_input_scale: float = 1.0
    pre_emphasis: float = 0.0
    lp_order: int = 0
    lp_prior: bool = False
    prior: str = "gaussian"
    tail_mass: float = 0.0
    sample_rate: int = 16_000
    n_fft: int = 1024
    fmin: float = 40.0
    fmax: float = 8_000.0
    dtype: str = "float32"
    param_dtype: str = "float32"

    @classmethod
    def from_config(cls, config):
        """Reads `config.model` and the feature fields of `config.data`.

        Fields added after a checkpoint was written take their defaults, so an
        older workdir's saved config still builds its model.
        """
        m = config.model
        return cls(
            hidden_size=int(m.hidden_size),
            cond_channels=int(m.cond_channels),
            n_mels=int(config.data.n_mels),
            hop_length=int(config.data.hop_length),
            subscale_factor=int(m.subscale_factor),
            future_horizon=int(m.future_horizon),
            lookback=int(m.lookback),
            context_summary=int(m.context_summary),
            context_channels=int(m.context_channels),
            neighbour_rows=int(m.get("neighbour_rows", 0)),
            fine_input_scale=float(m.get("fine_input_scale", 1.0)),
            pre_emphasis=float(config.data.get("pre_emphasis", 0.0)),
            lp_order=int(m.get("lp_order", 0)),
            lp_prior=bool(m.get("lp_prior", False)),
            # Models saved before these fields were trained with the Gaussian
            # prior and no tail (distribution.py).
            prior=str(m.get("prior", "gaussian")),
            tail_mass=float(m.get("tail_mass", 0.0)),
            sample_rate=int(config.data.sample_rate),
            n_fft=int(config.data.n_fft),
            fmin=float(config.data.fmin),
            fmax=float(config.data.fmax),
            dtype=str(m.dtype),
            param_dtype=str(m.param_dtype),
        )

    @property
    def window(self):
        """Columns Lw = W + F + 1 in one context summary window."""
        return self.lookback + self.future_horizon + 1

    @property
    def ring_size(self):
        """Summaries kept per row by the sampler: enough for the largest row lag."""
        return self.subscale_factor * (self.future_horizon + 1)

    @property
    def has_context(self):
        return self.subscale_factor > 1

    @property
    def neighbour_offsets(self):
        """(row offset o, column offset c) of the earlier-row samples that enter
        the cell directly: rows s - 1 .. s - neighbour_rows at columns i and,
        when the future horizon allows it, i + 1."""
        columns = range(min(self.future_horizon, 1) + 1)
        return tuple((o, c) for o in range(1, self.neighbour_rows + 1) for c in columns)

    def input_features(self, coarse, fine):
        """Autoregressive input of a sample: [..] classes -> [.., 2] floats,
        [scaled coarse, fine_input_scale * scaled fine]."""
        fine = audio.scale(fine) * self.fine_input_scale
        return jnp.stack([audio.scale(coarse), fine], axis=-1)


def gru_update(h, rh, ih, with_gates=False):
    """The WaveRNN recurrence on any slice of the state.

    Args:
      h: previous state [..., k].
      rh: R h + R_bias for the same units, [..., 3, k] (u, r, e gates).
      ih: input contributions (I x, plus I* c_t where it applies), [..., 3, k].
      with_gates: also return the gates (u, r, e), which the gradient of
        `gru_scan` reuses.

    Returns:
      The new state [..., k] (and the gates, each [..., k]).
    """
    u = jax.nn.sigmoid(rh[..., 0, :] + ih[..., 0, :])
    r = jax.nn.sigmoid(rh[..., 1, :] + ih[..., 1, :])
    e = jnp.tanh(r * rh[..., 2, :] + ih[..., 2, :])
    new = u * h + (1.0 - u) * e
    return (new, (u, r, e)) if with_gates else new


def _gru_scan_forward(R, R_bias, ih, h0):
    """The recurrence over time and what its gradient needs.

    Returns (states [n, r, H], (u, r, e gates and R_e h + b_e, each [n, r, H])).
    """
    hidden = h0.shape[-1]

    def step(h, ih_t):
        rh = (jnp.dot(h, R) + R_bias).reshape(h.shape[:-1] + (3, hidden))
        h, (u, r, e) = gru_update(h, rh, ih_t, with_gates=True)
        return h, (h, u, r, e, rh[..., 2, :])

    _, (states, *gates) = jax.lax.scan(step, h0, ih)
    return states, gates


@jax.custom_vjp
def gru_scan(R, R_bias, ih, h0):
    """`gru_update` over time for whole states, time-major (training).

    The same recurrence as `gru_update` (the sampler's step), with a
    hand-written gradient: the backward scan carries only dh and multiplies
    by R^T, and the gradient of R is one large product over all steps
    afterwards, instead of an outer product accumulated at every step.

    Args:
      R: [H, 3H] recurrent matrix; R_bias: [3H].
      ih: [n, r, 3, H] input contributions of every step.
      h0: [r, H] initial states.

    Returns:
      [n, r, H] the states after each step.
    """
    return _gru_scan_forward(R, R_bias, ih, h0)[0]


def _gru_scan_fwd(R, R_bias, ih, h0):
    states, gates = _gru_scan_forward(R, R_bias, ih, h0)
    return states, (R, h0, states, gates)


def _gru_scan_bwd(residuals, d_states):
    R, h0, states, (u, r, e, rh_e) = residuals
    previous = jnp.concatenate([h0[None], states[:-1]], axis=0)

    R_t = R.T

    def step(dh, xs):
        d_state, h_prev, u_t, r_t, e_t, rh_e_t = xs
        g = d_state + dh
        d_pre_e = g * (1.0 - u_t) * (1.0 - e_t * e_t)
        d_pre_u = g * (h_prev - e_t) * u_t * (1.0 - u_t)
        d_pre_r = d_pre_e * rh_e_t * r_t * (1.0 - r_t)
        d_rh = jnp.stack([d_pre_u, d_pre_r, d_pre_e * r_t], axis=-2)
        d_ih = jnp.stack([d_pre_u, d_pre_r, d_pre_e], axis=-2)
        flat = d_rh.reshape(d_rh.shape[:-2] + (-1,))
        dh = g * u_t + jnp.dot(flat, R_t)
        return dh, (flat, d_ih)

    dh0, (d_rh, d_ih) = jax.lax.scan(
        step, jnp.zeros_like(h0), (d_states, previous, u, r, e, rh_e), reverse=True
    )
    hidden = h0.shape[-1]
    d_R = jnp.dot(previous.reshape(-1, hidden).T, d_rh.reshape(-1, 3 * hidden))
    return d_R, d_rh.sum(axis=(0, 1)), d_ih, dh0


gru_scan.defvjp(_gru_scan_fwd, _gru_scan_bwd)


def upsample(frame_cond, utterance, times, hop_length, frame_offset=0):
    """Linear interpolation of frame features at sample times.

    Frame j covers samples [j * hop, (j + 1) * hop) and sits at its centre. The
    position is computed from the quotient and remainder of the time by the hop,
    so it is exact for any length and does not depend on `frame_offset`.

    Args:
      frame_cond: [N, m, c] features of (shifted) frames frame_offset ..
        frame_offset + m - 1, where shifted frame j + 1 is frame j (index 0 is
        frame -1; see MelConditioner).
      utterance: integer index into N for every entry of `times` (broadcasts).
      times: integer sample indices in [0, f * hop).
      hop_length: samples per frame.
      frame_offset: shifted frame index of frame_cond[:, 0].

    Returns:
      [*times.shape, c] features at those samples.
    """
    quotient = times // hop_length
    frac = (times % hop_length + 0.5) / hop_length + 0.5  # in (0.5, 1.5)
    step = jnp.floor(frac)
    last = frame_cond.shape[-2] - 2
    lo = jnp.clip(quotient + step.astype(times.dtype) - frame_offset, 0, last)
    w = (frac - step)[..., None].astype(frame_cond.dtype)
    a = frame_cond[utterance, lo]
    b = frame_cond[utterance, lo + 1]
    return a + w * (b - a)


@functools.lru_cache(maxsize=32)
def interpolation_matrix(t, frames, hop_length):
    """`upsample` of samples 0 .. t - 1 as a matrix: [t, frames] numpy, two
    weights per row."""
    times = np.arange(t)
    frac = (times % hop_length + 0.5) / hop_length + 0.5
    step = np.floor(frac)
    lo = np.clip(times // hop_length + step.astype(np.int64), 0, frames - 2)
    w = frac - step
    matrix = np.zeros((t, frames), np.float32)
    rows = np.arange(t)
    np.add.at(matrix, (rows, lo), 1.0 - w)
    np.add.at(matrix, (rows, lo + 1), w)
    return matrix


def _time_major(x):
    """[b, B, n, ...] (crop, row, column) -> [n, B, b, ...]; for an array of
    original time order [b, t], fold it first (`folding.fold`)."""
    return jnp.swapaxes(x, 0, 2)


def _unfold_time_major(x):
    """[n, B, b, ...] -> [b, t, ...] in original time order (t = B i + s)."""
    n, factor, b = x.shape[:3]
    return jnp.moveaxis(x.reshape((n * factor, b) + x.shape[3:]), 1, 0)


class MelConditioner(nn.Module):
    """Frame-rate conditioning features from padded log-mel frames."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, mel):
        """[..., f + 2 * MEL_PAD, n_mels] -> [..., f + 2, cond_channels]."""
        cfg = self.cfg
        kw = dict(dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        x = (mel.astype(cfg.dtype) - _MEL_CENTER) / _MEL_SCALE
        x = nn.relu(nn.Conv(cfg.cond_channels, (3,), padding="VALID", **kw)(x))
        x = nn.relu(nn.Conv(cfg.cond_channels, (3,), padding="VALID", **kw)(x))
        return nn.Dense(cfg.cond_channels, **kw)(x)


class ContextNet(nn.Module):
    """Masked context over earlier rows: per-row summaries and a row mix."""

    cfg: ModelConfig

    def setup(self):
        cfg = self.cfg
        self.summary_kernel = self.param(
            "summary_kernel",
            nn.initializers.variance_scaling(
                1.0, "fan_in", "truncated_normal", in_axis=(0, 1), out_axis=2
            ),
            (cfg.window, 2, cfg.context_summary),
            cfg.param_dtype,
        )
        self.summary_bias = self.param(
            "summary_bias",
            nn.initializers.zeros,
            (cfg.context_summary,),
            cfg.param_dtype,
        )
        self.mix = self.param(
            "mix",
            nn.initializers.variance_scaling(
                1.0, "fan_in", "truncated_normal", in_axis=(0, 1), out_axis=2
            ),
            (cfg.subscale_factor - 1, cfg.context_summary, cfg.context_channels),
            cfg.param_dtype,
        )
        self.row_embed = self.param(
            "row_embed",
            nn.initializers.normal(0.1),
            (cfg.subscale_factor, cfg.context_channels),
            cfg.param_dtype,
        )

    def summarize_rows(self, rows):
        """Summaries of every column of whole rows (training).

        Args:
          rows: [r, n, 2] row samples (scaled coarse, fine; 0 = padding).

        Returns:
          [r, n + F, d]: h(k) for k in [0, n + F), columns past n being padding.
        """
        cfg = self.cfg
        x = jnp.pad(rows, ((0, 0), (cfg.window - 1, cfg.future_horizon), (0, 0)))
        out = jax.lax.conv_general_dilated(
            x.astype(cfg.dtype),
            self.summary_kernel.astype(cfg.dtype),
            window_strides=(1,),
            padding="VALID",
            dimension_numbers=("NWC", "WIO", "NWC"),
        )
        return nn.relu(out + self.summary_bias.astype(cfg.dtype))

    def summarize_window(self, window):
        """Summary of one window per row (sampling): [r, Lw, 2] -> [r, d]."""
        cfg = self.cfg
        out = jnp.einsum(
            "rwc,wcd->rd",
            window.astype(cfg.dtype),
            self.summary_kernel.astype(cfg.dtype),
        )
        return nn.relu(out + self.summary_bias.astype(cfg.dtype))

    def mix_rows(self, by_offset, rows):
        """Mixes the summaries of earlier rows.

        Args:
          by_offset: [..., B - 1, d]; entry o - 1 is the summary read from row
            s - o (zero where s - o < 0).
          rows: the row index s of each entry, int [...].

        Returns:
          [..., context_channels].
        """
        cfg = self.cfg
        mixed = jnp.einsum(
            "...od,odc->...c", by_offset.astype(cfg.dtype), self.mix.astype(cfg.dtype)
        )
        return nn.relu(mixed + self.row_embed.astype(cfg.dtype)[rows])

    def __call__(self, grid, margins=(0, 0)):
        """Teacher-forced context for a whole folded grid.

        Args:
          grid: [b, B, left + n + right, 2] folded samples (0 where padding):
            the n columns to condition and (left, right) = `margins` columns of
            real samples before and after them (context only).
          margins: (left, right) columns, static.

        Returns:
          [b, B, n, context_channels]: the context of every (s, i).
        """
        cfg = self.cfg
        left, right = margins
        b, nrows, width, _ = grid.shape
        n = width - left - right
        summaries = self.summarize_rows(grid.reshape(b * nrows, width, 2))
        # Row s at column i reads h_z(i + F) of each earlier row z.
        first = left + cfg.future_horizon
        ahead = summaries[:, first : first + n].reshape(b, nrows, n, -1)
        by_offset = jnp.stack(
            [
                jnp.pad(ahead[:, : nrows - o], ((0, 0), (o, 0), (0, 0), (0, 0)))
                for o in range(1, nrows)
            ],
            axis=-2,
        )  # [b, B, n, B - 1, d]
        rows = jnp.arange(nrows)[None, :, None]
        return self.mix_rows(by_offset, rows)


class Linear(nn.Module):
    """`nn.Dense` (the same parameters, initialisers and paths) whose kernel
    and bias can also be read, so that the training forward multiplies all
    the cell's inputs by their kernels stacked into one matrix."""

    features: int
    use_bias: bool = True
    dtype: str = "float32"
    param_dtype: str = "float32"

    @nn.compact
    def weights(self, in_features):
        """(kernel [in, features], bias [features] or None) in `dtype`."""
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(),
            (in_features, self.features),
            self.param_dtype,
        )
        bias = None
        if self.use_bias:
            bias = self.param(
                "bias", nn.initializers.zeros, (self.features,), self.param_dtype
            )
            bias = bias.astype(self.dtype)
        return kernel.astype(self.dtype), bias

    def __call__(self, x):
        kernel, bias = self.weights(x.shape[-1])
        y = jnp.dot(x.astype(self.dtype), kernel)
        return y if bias is None else y + bias


class WaveRNNCell(nn.Module):
    """The WaveRNN cell: recurrent matmul R, masked input, dual softmax heads."""

    cfg: ModelConfig

    def setup(self):
        cfg = self.cfg
        h = cfg.hidden_size
        kw = dict(dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        self.R = self.param(
            "R", nn.initializers.orthogonal(), (h, 3 * h), cfg.param_dtype
        )
        self.R_bias = self.param(
            "R_bias", nn.initializers.zeros, (3 * h,), cfg.param_dtype
        )
        self.I = Linear(3 * h, **kw)
        self.I_cond = Linear(3 * h, use_bias=False, **kw)
        if cfg.has_context:
            self.I_context = Linear(3 * h, use_bias=False, **kw)
        if cfg.neighbour_offsets:
            self.I_neighbours = Linear(3 * h, use_bias=False, **kw)
        if cfg.lp_order:
            self.I_lp = Linear(3 * h, use_bias=False, **kw)
        self.I_coarse = self.param(
            "I_coarse", nn.initializers.normal(0.5), (3, h // 2), cfg.param_dtype
        )
        self.O1 = nn.Dense(h // 2, **kw)
        self.O2 = nn.Dense(NUM_CLASSES, **kw)
        self.O3 = nn.Dense(h // 2, **kw)
        self.O4 = nn.Dense(NUM_CLASSES, **kw)
        if cfg.lp_prior:
            # log scale of each half's prior around the prediction; starts
            # wide (0.05, 1,638 steps of int16) and learns to narrow.
            spread = dict(
                kernel_init=nn.initializers.zeros,
                bias_init=nn.initializers.constant(np.log(distribution.PRIOR_SCALE0)),
                param_dtype=cfg.param_dtype,
            )
            self.S_coarse = nn.Dense(1, **spread)
            self.S_fine = nn.Dense(1, **spread)

    def input_projection(
        self, prev, cond_ih, context=None, neighbours=None, prediction=None
    ):
        """I x: the input contributions to the gates, [..., 3, H].

        Args:
          prev: [..., 2] scaled [c_{t-1}, f_{t-1}] (`ModelConfig.input_features`).
          cond_ih: [..., 3H] the projected mel conditioning, `cond_projection`.
          context: [..., context_channels] subscale context (B > 1).
          neighbours: [..., 2 k] the input features of the k earlier-row
            samples of `ModelConfig.neighbour_offsets` (0 where the row does
            not exist), or None.
          prediction: [..., 1] the linear prediction of the sample
            (`linear_prediction.py`, in [-1, 1] units), or None.
        """
        ih = self.I(prev.astype(self.cfg.dtype)) + cond_ih
        if prediction is not None:
            ih = ih + self.I_lp(prediction.astype(self.cfg.dtype))
        if context is not None:
            ih = ih + self.I_context(context)
        if neighbours is not None:
            ih = ih + self.I_neighbours(neighbours.astype(self.cfg.dtype))
        return ih.reshape(ih.shape[:-1] + (3, self.cfg.hidden_size))

    def stacked_input_projection(
        self, prev, coarse_scaled, cond, context=None, neighbours=None, prediction=None
    ):
        """Every input contribution to the gates, c_t included, as one product
        (training): [prev, c_t, cond, prediction, context, neighbours] times
        the kernels of I, I*, I_cond, I_lp, I_context and I_neighbours stacked
        into one matrix, so the [.., 3H] result is written once. Equals
        `input_projection(prev, cond_projection(cond), ...)` plus
        `coarse_input(c_t)` on the fine halves.

        Args:
          prev: [..., 2]; coarse_scaled: [...] the current coarse value c_t;
          cond: [..., cond_channels] the upsampled mel conditioning; context,
          neighbours, prediction: as for `input_projection`.

        Returns:
          [..., 3, H].
        """
        cfg = self.cfg
        h = cfg.hidden_size
        kernel, bias = self.I.weights(2)
        # I* feeds c_t into the fine half of each gate only.
        coarse_row = jnp.concatenate(
            [jnp.zeros((3, h // 2), cfg.dtype), self.I_coarse.astype(cfg.dtype)], -1
        ).reshape(1, 3 * h)
        inputs = [prev, coarse_scaled[..., None], cond]
        kernels = [kernel, coarse_row, self.I_cond.weights(cond.shape[-1])[0]]
        for x, layer in (
            (prediction, "I_lp"),
            (context, "I_context"),
            (neighbours, "I_neighbours"),
        ):
            if x is not None:
                inputs.append(x)
                kernels.append(getattr(self, layer).weights(x.shape[-1])[0])
        x = jnp.concatenate([v.astype(cfg.dtype) for v in inputs], axis=-1)
        ih = jnp.dot(x, jnp.concatenate(kernels, axis=0)) + bias
        return ih.reshape(ih.shape[:-1] + (3, h))

    def cond_projection(self, cond):
        """I_cond c: [..., cond_channels] -> [..., 3H]. Linear, so projecting frame
        features and then interpolating equals interpolating and projecting."""
        return self.I_cond(cond)

    def recurrent_projection(self, h):
        """R h + R_bias: [..., H] -> [..., 3, H]."""
        dtype = self.cfg.dtype
        rh = jnp.dot(h.astype(dtype), self.R.astype(dtype)) + self.R_bias.astype(dtype)
        return rh.reshape(rh.shape[:-1] + (3, self.cfg.hidden_size))

    def coarse_input(self, coarse_scaled):
        """I* c_t: the contribution of c_t to the fine half, [...] -> [..., 3, H/2]."""
        dtype = self.cfg.dtype
        coarse_scaled = coarse_scaled.astype(dtype)[..., None, None]
        return coarse_scaled * self.I_coarse.astype(dtype)

    def coarse_logits(self, y_coarse):
        return self.O2(nn.relu(self.O1(y_coarse)))

    def fine_logits(self, y_fine):
        return self.O4(nn.relu(self.O3(y_fine)))

    def coarse_prior(self, y_coarse, prediction):
        """`distribution.prior_logits` of the 256 coarse classes: [..., H/2],
        [..., 1] -> [..., 256], added to `coarse_logits` when `lp_prior` is on."""
        log_scale = self.S_coarse(y_coarse.astype(jnp.float32))
        return distribution.prior_logits(self.cfg.prior, 0, prediction, log_scale)

    def fine_prior(self, y_fine, prediction, coarse):
        """The same for the 256 fine classes of coarse class `coarse` [...]."""
        log_scale = self.S_fine(y_fine.astype(jnp.float32))
        return distribution.prior_logits(
            self.cfg.prior, 1, prediction, log_scale, coarse
        )

    def run(self, ih, h0):
        """Teacher-forced recurrence over columns, time-major.

        Args:
          ih: [n, r, 3, H] input contributions, c_t's included
            (`stacked_input_projection`).
          h0: [r, H] initial state.

        Returns:
          [n, r, H] states.
        """
        dtype = self.cfg.dtype
        return gru_scan(
            self.R.astype(dtype),
            self.R_bias.astype(dtype),
            ih.astype(dtype),
            h0.astype(dtype),
        )


class SubscaleWaveRNN(nn.Module):
    """WaveRNN (B = 1) and Subscale WaveRNN (B > 1) with mel conditioning."""

    cfg: ModelConfig

    def setup(self):
        self.conditioner = MelConditioner(self.cfg)
        if self.cfg.has_context:
            self.context = ContextNet(self.cfg)
        self.cell = WaveRNNCell(self.cfg)

    def __call__(
        self, samples, mel, lengths=None, inputs=None, margins=(0, 0), inputs_valid=None
    ):
        """Teacher-forced per-sample log-probabilities.

        Args:
          samples: int16 [b, t], t a multiple of B: the targets.
          mel: [b, t // hop + 2 * MEL_PAD, n_mels] log-mel with MEL_PAD real
            neighbouring frames on each side.
          lengths: optional int [b]; samples at or past a length are padding.
          inputs: optional int16 [b, t + B (left + right)]: the waveform the
            autoregressive inputs read (default `samples`): the crop, perhaps
            with noise added in training, and `margins` = (left, right) columns
            of the real waveform before and after it (0 past the utterance),
            which are read as context only and never scored.
          margins: (left, right) columns in `inputs` around the crop, static.
          inputs_valid: optional bool [b, t + B (left + right)]: which margin
            samples are real (False: before or past the utterance, fed as the
            padding value like the sampler's not-yet-started rows). Default:
            all.

        Returns:
          float32 [b, t] log P(sample) in nats, original time order (0 on padding).
        """
        log_c, log_f = self.log_probs(
            samples, mel, lengths, inputs, margins, inputs_valid
        )
        return log_c + log_f

    def log_probs(
        self, samples, mel, lengths=None, inputs=None, margins=(0, 0), inputs_valid=None
    ):
        """(coarse, fine) teacher-forced log-probabilities, each float32 [b, t]
        in time order (0 on padding); arguments as for `__call__`."""
        log_c, log_f, _ = self.log_probs_from(
            None, samples, mel, lengths, inputs, margins, inputs_valid
        )
        return log_c, log_f

    def log_probs_from(
        self,
        initial_state,
        samples,
        mel,
        lengths=None,
        inputs=None,
        margins=(0, 0),
        inputs_valid=None,
    ):
        """`log_probs` from given recurrent states, and the states after the crop.

        Training with `train.carry_state` runs consecutive crops of an utterance
        through this, handing each crop's final states to the next.

        Args:
          initial_state: [b * B, H] the state of every row before its first
            column (row s of crop n at n * B + s), or None for zeros.
          samples, mel, lengths, inputs, margins, inputs_valid: as for
            `__call__`.

        Returns:
          (coarse [b, t], fine [b, t], final states [b * B, H]).
        """
        coarse, fine, valid = self._targets(samples, lengths)
        logits_c, logits_f, final = self._folded_logits(
            samples, mel, valid, inputs, margins, inputs_valid, initial_state
        )
        coarse, fine, valid = (_time_major(x) for x in (coarse, fine, valid))
        log_c, log_f = distribution.log_prob(
            logits_c, logits_f, coarse, fine, self.cfg.tail_mass
        )
        unfold = lambda x: _unfold_time_major(x * valid)  # noqa: E731
        return unfold(log_c), unfold(log_f), final

    def logits(
        self, samples, mel, lengths=None, inputs=None, margins=(0, 0), inputs_valid=None
    ):
        """Teacher-forced logits ([b, t, 256] coarse, [b, t, 256] fine), time order."""
        _, _, valid = self._targets(samples, lengths)
        logits_c, logits_f, _ = self._folded_logits(
            samples, mel, valid, inputs, margins, inputs_valid
        )
        return _unfold_time_major(logits_c), _unfold_time_major(logits_f)

    def _targets(self, samples, lengths):
        """Folded coarse and fine classes and the validity mask, each [b, B, n]."""
        factor = self.cfg.subscale_factor
        t = samples.shape[-1]
        coarse, fine = audio.split(samples)
        if lengths is None:
            valid = jnp.ones(samples.shape, bool)
        else:
            valid = jnp.arange(t)[None, :] < lengths[:, None]
        fold = lambda x: folding.fold(x, factor, axis=1)  # noqa: E731
        return fold(coarse), fold(fine), fold(valid)

    def _folded_logits(
        self, samples, mel, valid, inputs, margins, inputs_valid, initial_state=None
    ):
        cfg = self.cfg
        b, t = samples.shape
        factor = cfg.subscale_factor
        left, right = margins
        n = t // factor
        if inputs is None:
            inputs = samples
        if inputs.shape != (b, t + factor * (left + right)):
            raise ValueError(
                f"inputs: shape {inputs.shape}, expected {(b, t)} plus margins "
                f"{margins} columns of {factor} samples"
            )
        # [b, B, left + n + right, 2]: the crop (padding zeroed) and its margins.
        grid = folding.fold(cfg.input_features(*audio.split(inputs)), factor, axis=1)
        crop_valid = jnp.pad(valid, ((0, 0), (0, 0), (left, right)), constant_values=1)
        if inputs_valid is not None:
            crop_valid = crop_valid & folding.fold(inputs_valid, factor, axis=1)
        grid = grid * crop_valid[..., None]
        prev = jax.lax.dynamic_slice_in_dim(
            jnp.pad(grid, ((0, 0), (0, 0), (1, 0), (0, 0))), left, n, axis=2
        )
        # The recurrence runs time-major ([n, B, b, ...]: column, row, crop), so
        # the large [.., 3H] and [.., H] tensors are made in the order the scan
        # reads them and are never transposed; only the narrow inputs are.
        # The mel conditioning is interpolated per sample by one small product
        # with a static [t, frames] matrix and enters the one input product
        # (the sampler projects frames and interpolates the projections, the
        # same linear map in the other order).
        features = self.conditioner(mel)
        weights = interpolation_matrix(t, features.shape[1], cfg.hop_length)
        cond = jnp.einsum(
            "tm,bmc->tbc", weights.astype(features.dtype), features
        ).reshape(n, factor, b, -1)
        context = self.context(grid, margins) if cfg.has_context else None
        prediction = None
        if cfg.lp_order:
            prediction = _time_major(
                self._prediction(inputs, crop_valid, mel, left, t)
            )
        neighbours = self._neighbours(grid, left, n)
        h = cfg.hidden_size
        rows = factor * b
        coarse_class = _time_major(folding.fold(audio.split(samples)[0], factor, 1))
        ih = self.cell.stacked_input_projection(
            _time_major(prev),
            audio.scale(coarse_class) * _time_major(valid),
            cond,
            None if context is None else _time_major(context),
            None if neighbours is None else _time_major(neighbours),
            prediction,
        )
        if initial_state is None:
            initial_state = jnp.zeros((b * factor, h), cfg.dtype)
        # Rows in (s, crop) order for the scan; [b * B, H] in (crop, s) outside.
        initial_state = initial_state.reshape(b, factor, h).swapaxes(0, 1)
        states = self.cell.run(
            ih.reshape(n, rows, 3, h), initial_state.reshape(rows, h).astype(cfg.dtype)
        ).reshape(n, factor, b, h)
        final = states[-1].swapaxes(0, 1).reshape(b * factor, h)
        half = h // 2
        y_coarse, y_fine = states[..., :half], states[..., half:]
        coarse_logits = self.cell.coarse_logits(y_coarse)
        fine_logits = self.cell.fine_logits(y_fine)
        if cfg.lp_prior:
            coarse_logits = coarse_logits + self.cell.coarse_prior(y_coarse, prediction)
            fine_logits = fine_logits + self.cell.fine_prior(
                y_fine, prediction, coarse_class
            )
        return coarse_logits, fine_logits, final

    def _prediction(self, inputs, grid_valid, mel, left, t):
        """The linear prediction of every crop sample from the samples its
        context allows: [b, B, n, 1] (see `linear_prediction.py`)."""
        cfg = self.cfg
        factor = cfg.subscale_factor
        _, _, d = linear_prediction.offsets(factor, cfg.future_horizon, cfg.lp_order)
        valid = folding.unfold(grid_valid, axis=1)
        x = jnp.where(valid, audio.to_float(inputs), 0.0)
        reach = int(np.abs(d).max())
        x = jnp.pad(x, ((0, 0), (reach, reach)))
        time = np.arange(t)  # static: the offsets are numpy tables
        row = time % factor
        coef = linear_prediction.coefficients(cfg, mel)  # [b, f + 2 MEL_PAD, B, K]
        coef = coef[:, time // cfg.hop_length + MEL_PAD, row]  # [b, t, K]
        index = reach + left * factor + time[:, None] + d[row]  # [t, K]
        prediction = jnp.sum(coef * x[:, index], axis=-1)
        return folding.fold(prediction, factor, axis=1)[..., None]

    def _neighbours(self, grid, left, n):
        """Earlier-row samples of every (s, i) that enter the cell directly:
        [b, B, left + n + right, 2] -> [b, B, n, 2 k] (None without any)."""
        offsets = self.cfg.neighbour_offsets
        if not offsets:
            return None
        # One zero column past the right edge: column i + 1 of the last column.
        padded = jnp.pad(grid, ((0, 0), (0, 0), (0, 1), (0, 0)))
        picked = []
        for rows_back, ahead in offsets:
            cols = jax.lax.dynamic_slice_in_dim(padded, left + ahead, n, axis=2)
            picked.append(
                jnp.pad(cols[:, :-rows_back], ((0, 0), (rows_back, 0), (0, 0), (0, 0)))
            )
        return jnp.concatenate(picked, axis=-1)

    # The sampler's pieces. `sampling.py` calls them one scan step at a time.

    def frame_features(self, mel):
        """Conditioning features per frame: [N, f + 2 * MEL_PAD, n_mels] ->
        [N, f + 2, cond_channels]."""
        return self.conditioner(mel)

    def project_frames(self, features):
        """Gate inputs per frame, interpolated by the sampler per sample:
        [N, m, cond_channels] -> [N, m, 3H]."""
        return self.cell.cond_projection(features)

    def summarize(self, window):
        """Context summary of each row's newest window: [r, Lw, 2] -> [r, d]."""
        return self.context.summarize_window(window)

    def mix(self, by_offset, rows):
        """Context of each row from earlier rows' summaries (see ContextNet)."""
        return self.context.mix_rows(by_offset, rows)

    def step(
        self,
        h,
        prev,
        cond_ih,
        context,
        draw,
        rh=None,
        heads=None,
        neighbours=None,
        prediction=None,
    ):
        """One sampling step for a batch of rows: coarse, then fine.

        Args:
          h: [r, H] states.
          prev: [r, 2] scaled [c_{t-1}, f_{t-1}].
          cond_ih: [r, 3H] projected mel conditioning at each row's sample.
          context: [r, context_channels] or None (B = 1).
          draw: function (logits [r, 256], part) -> classes int32 [r]; part is 0
            for coarse and 1 for fine.
          rh: optional precomputed R h + R_bias [r, 3H] (the block-sparse path
            of `sparsity.py` computes it from packed blocks).
          heads: optional (coarse, fine) functions [r, H/2] -> [r, 256] logits
            standing in for `coarse_logits` and `fine_logits` (the block-sparse
            path multiplies the pruned output layers from packed blocks).
          neighbours: [r, 2 k] earlier-row samples (`ModelConfig.neighbour_offsets`)
            or None.
          prediction: [r, 1] linear prediction of each row's sample, or None.

        Returns:
          (new state [r, H], coarse [r], fine [r], coarse logits, fine logits).
        """
        half = self.cfg.hidden_size // 2
        ih = self.cell.input_projection(prev, cond_ih, context, neighbours, prediction)
        if rh is None:
            rh = self.cell.recurrent_projection(h)
        else:
            rh = rh.reshape(rh.shape[:-1] + (3, self.cfg.hidden_size))
        h_c = gru_update(h[..., :half], rh[..., :half], ih[..., :half])
        coarse_logits, fine_logits = heads or (
            self.cell.coarse_logits,
            self.cell.fine_logits,
        )
        logits_c = coarse_logits(h_c)
        if self.cfg.lp_prior:
            logits_c = logits_c + self.cell.coarse_prior(h_c, prediction)
        coarse = draw(logits_c, 0)
        ih_f = ih[..., half:] + self.cell.coarse_input(audio.scale(coarse))
        h_f = gru_update(h[..., half:], rh[..., half:], ih_f)
        logits_f = fine_logits(h_f)
        if self.cfg.lp_prior:
            logits_f = logits_f + self.cell.fine_prior(h_f, prediction, coarse)
        fine = draw(logits_f, 1)
        return jnp.concatenate([h_c, h_f], -1), coarse, fine, logits_c, logits_f


# Where the weight matrices that pruning and the block-sparse sampler name
# live in the parameter tree (and in the masks, which share its structure), and
# the biases that go with them: the one place that knows the tree's paths.
MATRIX_PATHS = {
    "R": ("cell", "R"),
    "O1": ("cell", "O1", "kernel"),
    "O2": ("cell", "O2", "kernel"),
    "O3": ("cell", "O3", "kernel"),
    "O4": ("cell", "O4", "kernel"),
    "context_summary": ("context", "summary_kernel"),
    "context_mix": ("context", "mix"),
}
BIAS_PATHS = {
    "R": ("cell", "R_bias"),
    "O1": ("cell", "O1", "bias"),
    "O2": ("cell", "O2", "bias"),
    "O3": ("cell", "O3", "bias"),
    "O4": ("cell", "O4", "bias"),
    "context_summary": ("context", "summary_bias"),
}


def matrix(params, name):
    """The weight matrix `name` (a key of MATRIX_PATHS) of a parameter tree."""
    return _at(params, MATRIX_PATHS[name])


def bias(params, name):
    """The bias of matrix `name` (a key of BIAS_PATHS) of a parameter tree."""
    return _at(params, BIAS_PATHS[name])


def matrix_tree(matrices):
    """A tree shaped like the parameters holding only `matrices` ({name: array})."""
    return traverse_util.unflatten_dict(
        {MATRIX_PATHS[name]: value for name, value in matrices.items()}
    )


def _at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def param_count(params):
    """Number of scalars in a parameter pytree."""
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))


def init_params(cfg, key):
    """Fresh parameters of `SubscaleWaveRNN(cfg)` (training and the API alike).

    Their shapes do not depend on the crop length, so one frame per subscale
    row serves as the example input.
    """
    model = SubscaleWaveRNN(cfg)
    samples = jnp.zeros((1, cfg.hop_length * cfg.subscale_factor), jnp.int16)
    mel = jnp.zeros((1, cfg.subscale_factor + 2 * MEL_PAD, cfg.n_mels), jnp.float32)
    return model.init(key, samples, mel)["params"]


def apply_to_batch(model, params, batch, margins, method, *leading, mel=None):
    """`model.apply` of a teacher-forced `method` to a batch dict (samples,
    mel, optional inputs and inputs_valid; see `SubscaleWaveRNN.__call__`),
    with `leading` arguments before the samples (an initial state) and an
    optional other `mel` in place of the batch's."""
    return model.apply(
        {"params": params},
        *leading,
        batch["samples"],
        batch["mel"] if mel is None else mel,
        inputs=batch.get("inputs"),
        margins=margins,
        inputs_valid=batch.get("inputs_valid"),
        method=method,
    )
