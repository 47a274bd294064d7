"""Jitted generation: the wavefront sampler, one `lax.scan` per utterance batch.

Notation: N utterances, B subscale factor, R = N * B rows, T scan steps,
f frames, n grid columns, H hidden size, d context summary width.

At scan step t, row s of every utterance works on column i = t - s(F + 1)
(`folding.column_at_step`); rows that have not started, or are past their
length, are masked. All R rows go through the cell as one batch, so after the
ramp-up of (B - 1)(F + 1) steps one step emits B samples per utterance. B = 1 is
the plain WaveRNN sampler: one row, one sample per step.

Randomness is cheap: instead of drawing 2 x 256 Gumbel variables per sample
inside the step, the uniforms for every step are drawn before the scan (in
blocks of `_NOISE_BLOCK` steps keyed by `fold_in(key, block)`, so the numbers
of a step depend only on the utterance key and the step, whatever the batch or
chunking) and each class is drawn by inverse CDF from the shaped softmax
(`distribution.Shaping`, the one place that knows the output distribution).

The context of each row comes from a ring buffer of the last B(F + 1) summaries
of every row (see `models.ContextNet`), updated from what the step just wrote,
so the cost of a step does not depend on the utterance length.
"""

import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from subscale import audio
from subscale import distribution
from subscale import errors
from subscale import folding
from subscale import linear_prediction
from subscale import models
from subscale import pitch
from subscale import sparsity

_NOISE_BLOCK = 256
# The Gumbel draw measured in the benchmark before was retired (issue 19): one
# kind is left, and `sampling.noise` keeps its name for old configs.
NOISE_KINDS = ("uniform",)
Shaping = distribution.Shaping


@flax.struct.dataclass
class Plan:
    """Static geometry of one generation and the per-row constants."""

    frame_cond: jax.Array  # [N, m, 3H] projected conditioning of m frames
    lp: jax.Array  # [N, m, B, K] predictor coefficients of the same frames
    voicing: jax.Array  # [N, m] voicing weight of the same frames (`pitch`)
    frame_offset: jax.Array  # shifted frame index of frame_cond[:, 0]
    row: jax.Array  # [R] subscale row s of each row
    utterance: jax.Array  # [R] utterance of each row
    row_length: jax.Array  # [R] valid columns of each row
    keys: jax.Array  # [N, key] one key per utterance
    columns: int = flax.struct.field(pytree_node=False)
    steps: int = flax.struct.field(pytree_node=False)


@flax.struct.dataclass
class Carry:
    """What one scan step hands to the next."""

    h: jax.Array  # [R, H]
    prev: jax.Array  # [R, 2] scaled coarse and fine of the row's last sample
    window: jax.Array  # [R, Lw, 2] the row's newest samples (B > 1)
    ring: jax.Array  # [R, K, d] the row's last K context summaries (B > 1)
    history: jax.Array  # [R, D] the row's last D samples in [-1, 1] (lp_order)


def pad_frames(mel, lengths):
    """Floors frames past each length and adds MEL_PAD floor frames on each side.

    Args:
      mel: [N, f, n_mels].
      lengths: int [N] frames.

    Returns:
      [N, f + 2 * MEL_PAD, n_mels].
    """
    frames = jnp.arange(mel.shape[1])[None, :, None]
    mel = jnp.where(frames < lengths[:, None, None], mel, audio.LOG_MEL_FLOOR)
    pad = models.MEL_PAD
    return jnp.pad(
        mel, ((0, 0), (pad, pad), (0, 0)), constant_values=audio.LOG_MEL_FLOOR
    )


def frame_features(model, params, mel, lengths):
    """Per-frame features: [N, f, n_mels] -> [N, f + 2, C (+ B K) + 1].

    The C conditioning features of each (shifted) frame, followed, for a model
    with `lp_order`, by its B x K predictor coefficients, and last its voicing
    weight (`pitch.voicing`), so that streaming slices all with one window.
    """
    return padded_frame_features(model, params, pad_frames(mel, lengths))


def padded_frame_features(model, params, padded):
    """`frame_features` of frames already padded (`pad_frames`), or of any
    window of m consecutive padded frames: [N, m, n_mels] -> [N, m - 4, ...],
    shifted frames first .. first + m - 5 of a window that starts at padded
    frame `first` (each feature reads padded frames j .. j + 4 only)."""
    cfg = model.cfg
    features = model.apply({"params": params}, padded, method="frame_features")
    first = models.MEL_PAD - 1  # shifted frame 0 is frame -1
    frames = features.shape[1]
    parts = [features]
    if cfg.lp_order:
        coef = linear_prediction.coefficients(cfg, padded)
        coef = coef[:, first : first + frames]
        parts.append(coef.reshape(coef.shape[:2] + (-1,)).astype(features.dtype))
    voicing = pitch.voicing(cfg, padded)[:, first : first + frames, None]
    parts.append(voicing.astype(features.dtype))
    return jnp.concatenate(parts, axis=-1)


def make_plan(model, params, features, key, lengths, frame_offset=0, frames=None):
    """Geometry, conditioning and keys for a batch of utterances.

    Args:
      model: a `models.SubscaleWaveRNN`.
      params: its parameters.
      features: [N, f + 2, C] from `frame_features`.
      key: a PRNG key (utterance n uses `fold_in(key, n)`) or one key per
        utterance, stacked [N, ...].
      lengths: int [N] frames of each utterance.
      frame_offset: first (shifted) frame whose conditioning `features` holds.
      frames: the utterances' frames when `features` holds only a window of
        them from `frame_offset` on (default: all of `features`); streaming
        holds only the frames one chunk of steps reads, so memory does not
        grow with the length.
    """
    cfg = model.cfg
    factor = cfg.subscale_factor
    num = features.shape[0]
    if frames is None:
        frames = features.shape[1] - 2
    voicing = features[..., -1].astype(jnp.float32)
    features = features[..., :-1]
    lp = jnp.zeros(features.shape[:2] + (factor, 0), features.dtype)
    if cfg.lp_order:
        width = factor * cfg.lp_order
        lp = features[..., -width:].reshape(features.shape[:2] + (factor, -1))
        features = features[..., :-width]
    frame_cond = model.apply({"params": params}, features, method="project_frames")
    columns = folding.num_columns(frames * cfg.hop_length, factor)
    rows = np.arange(num * factor)
    row = jnp.asarray(rows % factor)
    utterance = jnp.asarray(rows // factor)
    samples = lengths[utterance] * cfg.hop_length
    row_length = jnp.maximum(0, -(-(samples - row) // factor))
    if _is_key_batch(key):
        keys = key
    else:
        keys = jax.vmap(lambda n: jax.random.fold_in(key, n))(jnp.arange(num))
    return Plan(
        frame_cond=frame_cond,
        lp=lp,
        voicing=voicing,
        frame_offset=jnp.asarray(frame_offset, jnp.int32),
        row=row,
        utterance=utterance,
        row_length=row_length,
        keys=keys,
        columns=columns,
        steps=folding.num_steps(columns, factor, cfg.future_horizon),
    )


def _is_key_batch(key):
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    return key.ndim > (0 if typed else 1)


def init_carry(cfg, num_rows):
    """The zero state of every row before its first sample."""
    return Carry(
        h=jnp.zeros((num_rows, cfg.hidden_size), cfg.dtype),
        prev=jnp.zeros((num_rows, 2), cfg.dtype),
        window=jnp.zeros(
            (num_rows, cfg.window if cfg.has_context else 0, 2), cfg.dtype
        ),
        ring=jnp.zeros(
            (num_rows, cfg.ring_size if cfg.has_context else 0, cfg.context_summary),
            cfg.dtype,
        ),
        history=jnp.zeros((num_rows, _history_columns(cfg)), jnp.float32),
    )


def _history_columns(cfg):
    if not cfg.lp_order:
        return 0
    return linear_prediction.history_columns(
        cfg.subscale_factor, cfg.future_horizon, cfg.lp_order
    )


def step_uniforms(keys, factor, first, count):
    """Uniforms [count, R, 2] for scan steps [first, first + count).

    Drawn per utterance key in blocks of `_NOISE_BLOCK` steps so that the numbers
    of a step do not depend on N, on the total length or on chunking. `first`
    may be traced; `count` is static.
    """
    num_blocks = count // _NOISE_BLOCK + 2
    first_block = first // _NOISE_BLOCK
    blocks = first_block + jnp.arange(num_blocks)

    def per_utterance(key):
        def block(j):
            return jax.random.uniform(
                jax.random.fold_in(key, j), (_NOISE_BLOCK, factor, 2)
            )

        return jax.vmap(block)(blocks).reshape(-1, factor, 2)

    u = jax.vmap(per_utterance)(keys)  # [N, num_blocks * BLOCK, B, 2]
    offset = first - first_block * _NOISE_BLOCK
    u = jax.lax.dynamic_slice_in_dim(u, offset, count, axis=1)
    return u.transpose(1, 0, 2, 3).reshape(count, -1, 2)


def make_step(model, params, plan, shaping, with_log_probs=True, sparse_layouts=None):
    """The scan body: (carry, (t, u)) -> (carry, (int16 samples [R], log-probs)).

    Without `with_log_probs` the second output is empty, which saves two
    log-softmaxes per step. The matrices named in `sparse_layouts`
    ({name: sparsity.BlockLayout}) are multiplied from their kept blocks only.
    """
    cfg = model.cfg
    factor = cfg.subscale_factor
    horizon = cfg.future_horizon
    num_rows = plan.row.shape[0]
    rows = jnp.arange(num_rows)
    offsets = jnp.arange(1, factor)
    apply = functools.partial(model.apply, {"params": params})
    recurrent, heads = sparsity.sparse_products(params, sparse_layouts or {}, cfg.dtype)
    if cfg.lp_order:
        lp_rows_back, lp_columns, _ = (
            jnp.asarray(a)
            for a in linear_prediction.offsets(factor, horizon, cfg.lp_order)
        )

    def step(carry, xs):
        t, u = xs
        i = folding.column_at_step(t, plan.row, horizon)
        started = i >= 0
        active = started & (i < plan.row_length)
        times = folding.original_time(plan.row, jnp.maximum(i, 0), factor)
        cond_ih = models.upsample(
            plan.frame_cond, plan.utterance, times, cfg.hop_length, plan.frame_offset
        )
        # The frame of each row's sample in the plan's per-frame arrays.
        frame = times // cfg.hop_length + 1 - plan.frame_offset
        row_shaping = shaping.for_voicing(plan.voicing[plan.utterance, frame])
        context = None
        if cfg.has_context:
            slot = jnp.remainder(i + horizon, cfg.ring_size)
            source = rows[:, None] - offsets[None, :]
            earlier = (plan.row[:, None] - offsets[None, :]) >= 0
            by_offset = carry.ring[jnp.maximum(source, 0), slot[:, None]]
            by_offset = by_offset * earlier[..., None]
            context = apply(by_offset, plan.row, method="mix")

        def draw(logits, part):
            return row_shaping.draw(logits, part, u[:, part])

        neighbours = None
        if cfg.neighbour_offsets:
            # Row s - o wrote column i + o (F + 1) - 1 last, so column i + c of it
            # sits o (F + 1) - 1 - c entries before the end of its window.
            neighbours = jnp.concatenate(
                [
                    carry.window[
                        jnp.maximum(rows - o, 0), cfg.window - o * (horizon + 1) + c
                    ]
                    * (plan.row >= o)[:, None]
                    for o, c in cfg.neighbour_offsets
                ],
                axis=-1,
            )
        prediction = None
        if cfg.lp_order:
            # Row s - o's column i + c, held in slot (i + c) mod D of its
            # history (`linear_prediction.history_columns`); columns before 0
            # were never written and read as silence.
            depth = carry.history.shape[1]
            coef = plan.lp[plan.utterance, frame, plan.row]  # [R, K]
            source = rows[:, None] - lp_rows_back[plan.row]
            slot = jnp.remainder(i[:, None] + lp_columns[plan.row], depth)
            values = carry.history[source, slot]
            prediction = jnp.sum(coef * values, axis=-1, keepdims=True)
        rh = None if recurrent is None else recurrent(carry.h)
        h, coarse, fine, logits_c, logits_f = apply(
            carry.h,
            carry.prev,
            cond_ih,
            context,
            draw,
            rh,
            heads,
            neighbours,
            prediction,
            method="step",
        )
        x = (cfg.input_features(coarse, fine) * active[:, None]).astype(cfg.dtype)
        new = Carry(
            h=jnp.where(active[:, None], h, carry.h),
            prev=jnp.where(active[:, None], x, carry.prev),
            window=carry.window,
            ring=carry.ring,
            history=carry.history,
        )
        if cfg.lp_order:
            value = audio.to_float(audio.join(coarse, fine)) * active
            slot = jnp.remainder(i, carry.history.shape[1])
            old = carry.history[rows, slot]
            history = carry.history.at[rows, slot].set(jnp.where(started, value, old))
            new = new.replace(history=history)
        if cfg.has_context:
            shifted = jnp.concatenate([carry.window[:, 1:], x[:, None]], axis=1)
            window = jnp.where(started[:, None, None], shifted, carry.window)
            summary = apply(window, method="summarize")
            write = jnp.remainder(i, cfg.ring_size)
            old = carry.ring[rows, write]
            ring = carry.ring.at[rows, write].set(
                jnp.where(started[:, None], summary, old)
            )
            new = new.replace(window=window, ring=ring)
        sample = jnp.where(active, audio.join(coarse, fine), 0).astype(jnp.int16)
        if not with_log_probs:
            return new, (sample, jnp.zeros((0,), jnp.float32))
        log_c, log_f = distribution.log_prob(
            logits_c, logits_f, coarse, fine, cfg.tail_mass
        )
        return new, (sample, jnp.where(active, log_c + log_f, 0.0))

    return step


def run_steps(
    model,
    params,
    plan,
    carry,
    first,
    count,
    shaping,
    with_log_probs=True,
    sparse_layouts=None,
):
    """Runs scan steps [first, first + count); returns (carry, samples, log-probs).

    `shaping` is a `Shaping` (temperatures and probability floor).
    """
    step = make_step(model, params, plan, shaping, with_log_probs, sparse_layouts)
    ts = first + jnp.arange(count)
    u = step_uniforms(plan.keys, model.cfg.subscale_factor, first, count)
    carry, (samples, log_p) = jax.lax.scan(step, carry, (ts, u))
    return carry, samples, log_p


def to_waveforms(cfg, plan, by_step, frames):
    """Step-major outputs [T, R] -> waveforms [N, frames * hop] in time order."""
    factor = cfg.subscale_factor
    cols = np.arange(plan.columns)[None, :]
    step_of = folding.wavefront_step(plan.row[:, None], cols, cfg.future_horizon)
    grid = by_step[step_of, jnp.arange(plan.row.shape[0])[:, None]]  # [R, n]
    grid = grid.reshape(-1, factor, plan.columns)
    return folding.unfold(grid, axis=1)[:, : frames * cfg.hop_length]


def de_emphasis(samples, coeff, state=None):
    """Undoes `audio.pre_emphasis`: x[t] = y[t] + round(coeff x[t - 1]).

    Integer arithmetic in a sequential scan, so it inverts `audio.pre_emphasis`
    exactly and a waveform filtered chunk by chunk (the state carried) equals
    the waveform filtered whole.

    Args:
      samples: int16 [N, t] pre-emphasised samples y.
      coeff: the pre-emphasis coefficient (static); 0 returns `samples`.
      state: int32 [N] x[-1] of each row (default zeros).

    Returns:
      (int16 [N, t] x clipped to 16 bits, int32 [N] the new state x[t - 1]).
    """
    if state is None:
        state = jnp.zeros(samples.shape[:1], jnp.int32)
    if not coeff:
        return samples, state

    def step(previous, y):
        x = jnp.clip(y + audio.emphasis_prediction(previous, coeff), -32768, 32767)
        return x, x

    state, x = jax.lax.scan(step, state, samples.T.astype(jnp.int32))
    return x.T.astype(jnp.int16), state


def generate(
    model,
    params,
    mel,
    key,
    lengths=None,
    shaping=None,
    noise="uniform",
    with_log_probs=True,
    sparse_layouts=None,
):
    """Samples waveforms for a batch of mel sequences (traceable, not jitted).

    Args:
      model: a `models.SubscaleWaveRNN`.
      params: its parameters.
      mel: [N, f, n_mels] unpadded log-mel frames.
      key: PRNG key (utterance n uses `fold_in(key, n)`) or keys [N, ...].
      lengths: int [N] frames per utterance (default: all f).
      shaping: `Shaping` (temperatures, probability floor); default plain.
      noise: "uniform" (inverse CDF), the one kind (`NOISE_KINDS`).
      with_log_probs: also compute the log-probabilities (else they are None).
      sparse_layouts: {name: sparsity.BlockLayout} of the matrices multiplied
        block-sparsely (`sparsity.sampling_layouts`).

    Returns:
      (int16 [N, f * hop] samples, float32 [N, f * hop] log-probs in nats at
      temperature 1, of the samples the model drew: before de-emphasis when the
      model has `pre_emphasis`); zero past each length.
    """
    check_noise(noise)
    if lengths is None:
        lengths = jnp.full((mel.shape[0],), mel.shape[1], jnp.int32)
    if shaping is None:
        shaping = Shaping.make()
    features = frame_features(model, params, mel, lengths)
    plan = make_plan(model, params, features, key, lengths)
    carry = init_carry(model.cfg, plan.row.shape[0])
    _, samples, log_p = run_steps(
        model,
        params,
        plan,
        carry,
        0,
        plan.steps,
        shaping,
        with_log_probs,
        sparse_layouts,
    )
    frames = mel.shape[1]
    drawn = to_waveforms(model.cfg, plan, samples, frames)
    samples, _ = de_emphasis(drawn, model.cfg.pre_emphasis)
    if not with_log_probs:
        return samples, None
    return samples, to_waveforms(model.cfg, plan, log_p, frames)


def generate_stream(
    model,
    params,
    mel,
    key,
    chunk_frames,
    shaping=None,
    noise="uniform",
    sparse_layouts=None,
):
    """Generates one utterance chunk by chunk, yielding audio as it is made.

    The scan state is carried from chunk to chunk, and each chunk's plan holds
    only the conditioning of the frames its steps read, so memory stays flat in
    the utterance length. The concatenated chunks equal `generate` for the same
    key, sample for sample.

    Args:
      model: a `models.SubscaleWaveRNN`.
      params: its parameters.
      mel: [f, n_mels] unpadded log-mel frames of one utterance.
      key: PRNG key (the utterance's own key, as for a single-utterance
        `sample_fn`).
      chunk_frames: frames of audio per chunk of scan steps; chunk_frames * hop
        must be a multiple of the subscale factor.
      shaping: `Shaping` (temperatures, probability floor); default plain.
      noise: "uniform", the one kind (`NOISE_KINDS`).
      sparse_layouts: {name: sparsity.BlockLayout} of the matrices multiplied
        block-sparsely (`sparsity.sampling_layouts`).

    Yields:
      int16 [k] consecutive pieces of the waveform, f * hop samples in all.
    """
    cfg = model.cfg
    factor, hop = cfg.subscale_factor, cfg.hop_length
    check_chunk_frames(chunk_frames, hop, factor)
    check_noise(noise)
    if shaping is None:
        shaping = Shaping.make()
    frames = mel.shape[0]
    lengths = jnp.array([frames], jnp.int32)
    # The features of each chunk's window are computed with the chunk, so
    # memory holds the mel and one window's features, whatever the length.
    padded = jax.jit(pad_frames)(mel[None], lengths)
    chunk_steps = chunk_frames * hop // factor
    lag = (factor - 1) * (cfg.future_horizon + 1)
    # Shifted frames read by steps [first, first + chunk_steps), plus margins.
    window = min(frames + 2, -(-factor * (chunk_steps + lag) // hop) + 4)
    run = jax.jit(
        functools.partial(
            _stream_chunk, model, chunk_steps, lag, window, sparse_layouts
        )
    )
    emphasis = jax.jit(functools.partial(de_emphasis, coeff=cfg.pre_emphasis))
    columns = folding.num_columns(frames * hop, factor)
    steps = folding.num_steps(columns, factor, cfg.future_horizon)
    carry = init_carry(cfg, factor)
    emphasis_state = jnp.zeros((1,), jnp.int32)
    row = np.arange(factor)
    pending = np.zeros((0, factor), np.int16)  # outputs of steps >= emitted
    emitted = 0  # columns already yielded
    for first in range(0, steps, chunk_steps):
        carry, out = run(params, padded, key[None], lengths, carry, first, shaping)
        pending = np.concatenate([pending, np.asarray(out)])
        done = min(first + chunk_steps - lag, columns)
        if done <= emitted:
            continue
        cols = np.arange(emitted, done)[None, :]
        grid = pending[
            folding.wavefront_step(row[:, None], cols, cfg.future_horizon) - emitted,
            row[:, None],
        ]
        piece = folding.unfold(grid[None], axis=1)[0]
        end = min(done * factor, frames * hop)
        piece, emphasis_state = emphasis(
            jnp.asarray(piece[: end - emitted * factor])[None], state=emphasis_state
        )
        yield np.asarray(piece[0])
        pending = pending[done - emitted :]
        emitted = done


def check_chunk_frames(chunk_frames, hop_length, factor):
    """Raises SubscaleError unless chunk_frames * hop is a positive multiple of B."""
    if chunk_frames < 1 or (chunk_frames * hop_length) % factor:
        raise errors.SubscaleError(
            f"chunk_frames={chunk_frames}: chunk_frames * hop_length "
            f"({hop_length}) must be a positive multiple of the subscale factor "
            f"{factor}"
        )


check_shaping = distribution.check_shaping


def check_noise(noise):
    """Raises ValueError unless `noise` is one of NOISE_KINDS (`sampling.noise`
    is kept for old configs and callers; one kind is left)."""
    if noise not in NOISE_KINDS:
        raise ValueError(f"sampling.noise must be one of {NOISE_KINDS}, got {noise!r}")


def _stream_chunk(
    model,
    count,
    lag,
    window,
    sparse_layouts,
    params,
    padded,
    keys,
    lengths,
    carry,
    first,
    shaping,
):
    """Runs `count` steps from `first` with the conditioning window they read,
    computed here from the padded mel [1, f + 2 MEL_PAD, n_mels]."""
    hop, factor = model.cfg.hop_length, model.cfg.subscale_factor
    frames = padded.shape[1] - 2 * models.MEL_PAD
    start = jnp.maximum(0, factor * (first - lag) // hop)
    start = jnp.minimum(start, frames + 2 - window)
    features = padded_frame_features(
        model, params, jax.lax.dynamic_slice_in_dim(padded, start, window + 4, 1)
    )
    plan = make_plan(model, params, features, keys, lengths, start, frames=frames)
    carry, samples, _ = run_steps(
        model,
        params,
        plan,
        carry,
        first,
        count,
        shaping,
        with_log_probs=False,
        sparse_layouts=sparse_layouts,
    )
    return carry, samples


def make_sample_fn(
    model_cfg,
    *,
    noise="uniform",
    with_log_probs=False,
    sparse_layouts=None,
    temperature=1.0,
    coarse_temperature=None,
    prob_floor=0.0,
    voiced_temperature=None,
):
    """A jitted, pure `sample_fn(params, mel, key, lengths=None, temperature=...,
    coarse_temperature=..., prob_floor=..., voiced_temperature=...)`.

    `mel` is [f, n_mels] (one utterance, drawn with `key`: returns int16
    [f * hop]) or [N, f, n_mels] with optional `lengths` int [N] in frames
    (returns int16 [N, f * hop], zero past each length). For a batch, `key` is
    either one key per utterance, stacked [N, ...] (then utterance n gets exactly
    what it gets alone with key[n]), or one key (utterance n uses
    `fold_in(key, n)`). `temperature` divides the fine logits and, unless
    `coarse_temperature` is given, the coarse ones; `prob_floor` is subtracted
    from every probability before drawing; `voiced_temperature` (None or 0:
    off) replaces `temperature` in voiced frames (see `Shaping`). The four
    default to
    the arguments of the same names given here (plain sampling unless told:
    `api.Vocoder` passes its config's). With `with_log_probs` it returns
    (samples, log-probs). With `sparse_layouts` (`sparsity.sampling_layouts` of
    pruned params) the products with those matrices skip their zero blocks; the
    layouts must describe the params the function is given.
    """
    check_noise(noise)
    check_shaping(
        temperature,
        coarse_temperature,
        prob_floor,
        voiced_temperature=voiced_temperature,
    )
    model = models.SubscaleWaveRNN(model_cfg)

    @jax.jit
    def sample_fn(
        params,
        mel,
        key,
        lengths=None,
        temperature=temperature,
        coarse_temperature=coarse_temperature,
        prob_floor=prob_floor,
        voiced_temperature=voiced_temperature,
    ):
        single = mel.ndim == 2
        if single:
            mel = mel[None]
            key = key[None]
            lengths = None
        shaping = Shaping.make(
            temperature, coarse_temperature, prob_floor, voiced_temperature
        )
        samples, log_p = generate(
            model,
            params,
            mel,
            key,
            lengths,
            shaping,
            noise,
            with_log_probs,
            sparse_layouts,
        )
        if not with_log_probs:
            return samples[0] if single else samples
        if single:
            return samples[0], log_p[0]
        return samples, log_p

    return sample_fn
