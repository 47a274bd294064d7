"""Sparse WaveRNN: block magnitude pruning on the paper's cubic schedule.

docs/design.md, "Sparse path". Every `every_steps` steps from t0 = `start_step`,
each pruned matrix keeps its largest blocks and masks the k = round(z(t) * blocks)
blocks of smallest mean magnitude, with

    z(t) = Z (1 - (1 - (t - t0) / S)^3)   for t0 <= t <= t0 + S,

0 before t0 and Z after. The three gate blocks of R (u, r, e) are pruned
separately. A block shape (o, i) follows the paper's W[out, in] convention:
16x1 is 16 outputs that share one input. Our kernels are stored [in, out], so a
block covers i rows and o columns of the kernel.

Masks only grow: a block pruned once ranks below every kept block at the next
update, so it stays pruned and z(t), which never decreases, only adds blocks.
Ties between equal scores go to the lower block index (a stable sort). Masked
weights are exactly zero after every optimizer step (`apply_masks` runs after
the update), so Adam's moments cannot revive them.

The masks are updated on the host, between steps (`maybe_update_masks`): at most
once every `every_steps` steps, so the jitted train step stays the same program
at every step and never carries the ranking (an argsort per matrix) it would
need only once every few hundred steps. The fraction is a traced argument, so
the ranking compiles once for the whole ramp.

Sampling. The cell matrices that are pruned (R and O1..O4) can be multiplied
block-sparsely: `block_layout` lists, per group of o outputs, the input blocks
that were kept (an ELL layout padded to the fullest group), and
`block_sparse_matmul` gathers those inputs and does one batched product;
`sparse_products` wires those products into the sampler's step. On the
CPU this beats `jax.experimental.sparse` BCSR by 4x at B = 1 and matches its
speed only when dense at B = 16 (BENCHMARKS.md).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from subscale import errors
from subscale import models

PRUNABLE = ("R", "O1", "O2", "O3", "O4", "context")
# The `models.MATRIX_PATHS` names of a PRUNABLE name that is not one itself.
_MATRICES = {"context": ("context_summary", "context_mix")}
# Matrices the sampler can multiply block-sparsely (the context network's
# kernels are small and stay dense).
SAMPLED = ("R", "O1", "O2", "O3", "O4")


@dataclasses.dataclass(frozen=True)
class SparsityConfig:
    target: float = 0.0
    start_step: int = 1_000
    ramp_steps: int = 200_000
    every_steps: int = 500
    block_shape: tuple = (16, 1)
    prune: tuple = ("R",)

    @classmethod
    def from_config(cls, config):
        s = config.sparsity
        cfg = cls(
            target=float(s.target),
            start_step=int(s.start_step),
            ramp_steps=int(s.ramp_steps),
            every_steps=int(s.every_steps),
            block_shape=tuple(int(b) for b in s.block_shape),
            prune=tuple(s.prune),
        )
        unknown = set(cfg.prune) - set(PRUNABLE)
        if unknown:
            raise errors.SubscaleError(
                f"sparsity.prune: unknown matrices {sorted(unknown)}; "
                f"choose from {PRUNABLE}"
            )
        if len(cfg.block_shape) != 2 or min(cfg.block_shape) < 1:
            raise errors.SubscaleError(
                f"sparsity.block_shape={cfg.block_shape}: two positive sizes "
                "(outputs, inputs)"
            )
        return cfg

    @property
    def enabled(self):
        return self.target > 0


def schedule(step, cfg):
    """Target sparsity z(t) at `step` (the cubic ramp)."""
    if step < cfg.start_step:
        return 0.0
    progress = min(1.0, (step - cfg.start_step) / max(cfg.ramp_steps, 1))
    return cfg.target * (1.0 - (1.0 - progress) ** 3)


def is_update_step(step, cfg):
    """Whether masks are recomputed before `step`."""
    if not cfg.enabled or step < cfg.start_step:
        return False
    since = step - cfg.start_step
    return since % cfg.every_steps == 0 or since == cfg.ramp_steps


def pruned_matrices(params, cfg):
    """{path: number of column groups} of the pruned leaves of `params`.

    R is split into its three gates (groups); other kernels have one group.
    The context network's kernels are pruned when `params` has them (B > 1).
    """
    flat = traverse_util.flatten_dict(params)
    chosen = {}
    for pruned in cfg.prune:
        for name in _MATRICES.get(pruned, (pruned,)):
            path = models.MATRIX_PATHS[name]
            if path in flat:
                chosen[path] = 3 if name == "R" else 1
    return chosen


def init_masks(params, cfg):
    """All-ones masks for the pruned matrices ({} when sparsity is off)."""
    if not cfg.enabled:
        return {}
    flat = traverse_util.flatten_dict(params)
    masks = {}
    for path, groups in pruned_matrices(params, cfg).items():
        # Fail at the start of training, not at t0, on a block shape that does
        # not tile a matrix.
        rows = int(np.prod(flat[path].shape[:-1]))
        _block_grid((rows, flat[path].shape[-1] // groups), cfg.block_shape)
        masks[path] = jnp.ones_like(flat[path])
    return traverse_util.unflatten_dict(masks)


def _block_grid(shape, block_shape):
    """[in / i, i, out / o, o]: a matrix [in, out] cut into blocks (o, i)."""
    rows, cols = shape
    outs, ins = block_shape
    if rows % ins or cols % outs:
        raise errors.SubscaleError(
            f"sparsity.block_shape={tuple(block_shape)} does not tile a "
            f"{rows}x{cols} matrix [in, out] (outputs must divide {cols}, inputs "
            f"{rows})"
        )
    return (rows // ins, ins, cols // outs, outs)


def block_mask(kernel, fraction, block_shape, previous=None):
    """Mask of `kernel` [..., in, out] pruning its weakest blocks.

    Args:
      kernel: a weight matrix (leading axes are folded into the input axis).
      fraction: share of blocks to mask, in [0, 1) (may be traced); the count
        is round(fraction * blocks), halves to even.
      block_shape: (outputs, inputs) of one block.
      previous: the kernel's current mask, or None; the blocks it prunes rank
        below every other block, so they stay pruned.

    Returns:
      {0, 1} array of the kernel's shape and dtype.
    """
    shape = kernel.shape
    w = kernel.reshape(-1, shape[-1])
    grid = _block_grid(w.shape, block_shape)
    scores = jnp.abs(w).reshape(grid).mean((1, 3))
    if previous is not None:
        kept = previous.reshape(grid).max((1, 3)) > 0
        scores = jnp.where(kept, scores, -1.0)
    count = scores.size
    k = jnp.round(jnp.asarray(fraction, jnp.float32) * count)
    order = jnp.argsort(scores.reshape(-1), stable=True)
    rank = jnp.zeros(count, jnp.int32).at[order].set(jnp.arange(count))
    keep = (rank >= k).astype(kernel.dtype).reshape(grid[0], 1, grid[2], 1)
    return jnp.broadcast_to(keep, grid).reshape(shape)


def init_params(model_cfg, cfg, key):
    """Fresh parameters (`models.init_params`) with the configured pruning:
    (params with masked weights zeroed, masks)."""
    params = models.init_params(model_cfg, key)
    masks = init_masks(params, cfg)
    return apply_masks(params, masks), masks


def compute_masks(params, fraction, cfg, masks=None):
    """Masks pruning `fraction` of the blocks of every pruned matrix.

    Args:
      params: the parameter pytree.
      fraction: share of blocks to prune in each matrix (each gate of R).
      cfg: SparsityConfig.
      masks: the current masks (blocks they prune stay pruned), or None.

    Returns:
      Masks nested like params, for the pruned matrices only.
    """
    flat = traverse_util.flatten_dict(params)
    old = traverse_util.flatten_dict(masks) if masks else {}
    new = {}
    for path, groups in pruned_matrices(params, cfg).items():
        parts = jnp.split(flat[path], groups, axis=-1)
        previous = (
            jnp.split(old[path], groups, axis=-1) if path in old else [None] * groups
        )
        new[path] = jnp.concatenate(
            [
                block_mask(p, fraction, cfg.block_shape, q)
                for p, q in zip(parts, previous)
            ],
            axis=-1,
        )
    return traverse_util.unflatten_dict(new)


_compute_jit = jax.jit(compute_masks, static_argnums=2)


def update_masks(params, masks, step, cfg):
    """The masks to train `step` with: recomputed at update steps, else `masks`."""
    if not is_update_step(step, cfg):
        return masks
    return _compute_jit(params, schedule(step, cfg), cfg, masks)


def apply_masks(params, masks):
    """params * masks where a mask exists (pure; identity when masks is {})."""
    if not masks:
        return params
    flat_masks = traverse_util.flatten_dict(masks)
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict(
        {
            path: leaf * flat_masks[path] if path in flat_masks else leaf
            for path, leaf in flat.items()
        }
    )


def maybe_update_masks(state, step, config):
    """The train state with the masks for `step` applied (host-side, between steps)."""
    cfg = SparsityConfig.from_config(config)
    masks = update_masks(state.params, state.masks, step, cfg)
    if masks is state.masks:
        return state
    return state.replace(masks=masks, params=apply_masks(state.params, masks))


@dataclasses.dataclass(frozen=True, eq=False)
class BlockLayout:
    """Where the kept blocks of a pruned kernel [in, out] are (host-side, static).

    Output columns come in groups of o (the block's outputs); group g keeps the
    input blocks `index[g, :count[g]]`, padded to the same K for every group
    (padding points at input block 0 and is masked by `valid`).
    """

    index: np.ndarray  # [G, K] int32 input block of each kept block
    valid: np.ndarray  # [G, K] bool
    block_shape: tuple  # (outputs o, inputs i)
    shape: tuple  # (in, out) of the kernel

    @property
    def density(self):
        return float(self.valid.sum()) / (
            (self.shape[0] // self.block_shape[1]) * self.index.shape[0]
        )


def block_layout(kernel, block_shape):
    """The layout of the non-zero blocks of `kernel` [in, out] (numpy)."""
    w = np.asarray(kernel)
    grid = _block_grid(w.shape, block_shape)
    nonzero = np.abs(w).reshape(grid).max((1, 3)) > 0
    kept = [np.flatnonzero(nonzero[:, g]) for g in range(grid[2])]
    width = max(1, max(len(k) for k in kept))
    index = np.zeros((len(kept), width), np.int32)
    valid = np.zeros((len(kept), width), bool)
    for g, k in enumerate(kept):
        index[g, : len(k)] = k
        valid[g, : len(k)] = True
    return BlockLayout(index, valid, tuple(block_shape), w.shape)


def pack_blocks(kernel, layout):
    """Kept blocks of `kernel` [in, out] as [G, o, K * i] (zero where padding).

    This is the operand layout of the batched product in `block_sparse_matmul`
    (contracted axis last), so the scan reads it as is instead of transposing
    it at every step.
    """
    outs, ins = layout.block_shape
    rows, cols = layout.shape
    blocks = kernel.reshape(rows // ins, ins, cols // outs, outs)
    groups = np.arange(cols // outs)[:, None]
    packed = blocks[layout.index, :, groups, :]  # [G, K, i, o]
    packed = packed * layout.valid[..., None, None]
    return packed.transpose(0, 3, 1, 2).reshape(cols // outs, outs, -1)


def block_sparse_matmul(x, packed, layout):
    """x @ kernel using only the kept blocks: [r, in] -> [r, out].

    Each group of o outputs gathers the i inputs of each of its K kept blocks,
    so the work is r * G * K * i * o multiply-adds instead of r * in * out.
    """
    ins = layout.block_shape[1]
    rows = layout.shape[0]
    groups = layout.index.shape[0]
    gathered = x.reshape(x.shape[0], rows // ins, ins)[:, layout.index]  # [r, G, K, i]
    gathered = gathered.reshape(x.shape[0], groups, -1)
    out = jnp.einsum("rgc,goc->rgo", gathered, packed)
    return out.reshape(x.shape[0], layout.shape[1])


def sampling_layouts(params, cfg, max_density=1.0):
    """Block layouts of the pruned cell matrices worth multiplying sparsely.

    Args:
      params: parameters whose pruned weights are exact zeros.
      cfg: SparsityConfig (which matrices are pruned, the block shape).
      max_density: largest share of kept blocks for which a matrix goes through
        the block-sparse product (1.0: every pruned matrix).

    Returns:
      {name: BlockLayout} for names in SAMPLED ("R", "O1", ...); {} when dense.
    """
    if not cfg.enabled:
        return {}
    layouts = {}
    for name in SAMPLED:
        if name not in cfg.prune:
            continue
        kernel = models.matrix(params, name)
        layout = block_layout(np.asarray(kernel), cfg.block_shape)
        if layout.density <= max_density:
            layouts[name] = layout
    return layouts


def sparse_products(params, layouts, dtype):
    """The block-sparse stand-ins that `models.SubscaleWaveRNN.step` takes.

    Args:
      params: the model's parameters (pruned weights are exact zeros).
      layouts: {name: BlockLayout} of the matrices to multiply
        block-sparsely (`sampling_layouts`); {} for none.
      dtype: compute dtype.

    Returns:
      (rh, heads): rh maps h [r, H] to R h + R_bias [r, 3H], or is None when R
      stays dense; heads is the (coarse, fine) pair of output functions
      O2(relu(O1 y)) and O4(relu(O3 y)), or None when O1..O4 all stay dense.
    """

    def linear(name):
        kernel = models.matrix(params, name).astype(dtype)
        bias = models.bias(params, name).astype(dtype)
        if name not in layouts:
            return lambda x: x @ kernel + bias
        layout = layouts[name]
        packed = pack_blocks(kernel, layout)
        return lambda x: block_sparse_matmul(x, packed, layout) + bias

    rh = linear("R") if "R" in layouts else None
    heads = None
    if any(name in layouts for name in ("O1", "O2", "O3", "O4")):
        o1, o2, o3, o4 = (linear(name) for name in ("O1", "O2", "O3", "O4"))
        heads = (
            lambda y: o2(jax.nn.relu(o1(y))),
            lambda y: o4(jax.nn.relu(o3(y))),
        )
    return rh, heads
