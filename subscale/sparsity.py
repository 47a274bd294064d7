"""Sparse WaveRNN: block magnitude pruning on the paper's cubic schedule.

PAPER.md section 3. Every `every_steps` steps from t0 = `start_step`, each pruned
matrix keeps its largest blocks and masks the k = round(z(t) * blocks) blocks of
smallest mean magnitude, with

    z(t) = Z (1 - (1 - (t - t0) / S)^3)   for t0 <= t <= t0 + S,

0 before t0 and Z after. The three gate blocks of R (u, r, e) are pruned
separately. A block shape (o, i) follows the paper's W[out, in] convention:
16x1 is 16 outputs that share one input. Our kernels are stored [in, out], so a
block covers i rows and o columns of the kernel.

Masked weights are exactly zero after every optimizer step (`apply_masks` runs
after the update), so their magnitude is the smallest there is and a pruned
block stays pruned: masks only grow. Ties between equal scores go to the lower
block index (a stable sort).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from subscale import errors

PRUNABLE = ("R", "O1", "O2", "O3", "O4", "context")


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
    """{path: (kernel [in, out] view, number of column groups)} of pruned leaves.

    R is split into its three gates (groups); other kernels have one group.
    """
    flat = traverse_util.flatten_dict(params)
    chosen = {}
    for path, leaf in flat.items():
        name = _matrix_name(path)
        if name is not None and name in cfg.prune:
            chosen[path] = 3 if name == "R" else 1
    return chosen


def _matrix_name(path):
    if path[:2] == ("cell", "R"):
        return "R"
    if path[0] == "cell" and len(path) == 3 and path[1] in ("O1", "O2", "O3", "O4"):
        return path[1] if path[2] == "kernel" else None
    if path[0] == "context" and path[1] in ("summary_kernel", "mix"):
        return "context"
    return None


def init_masks(params, cfg):
    """All-ones masks for the pruned matrices ({} when sparsity is off)."""
    if not cfg.enabled:
        return {}
    flat = traverse_util.flatten_dict(params)
    masks = {path: jnp.ones_like(flat[path]) for path in pruned_matrices(params, cfg)}
    return traverse_util.unflatten_dict(masks)


def block_mask(kernel, fraction, block_shape):
    """Mask of `kernel` [..., in, out] pruning its weakest blocks.

    Args:
      kernel: a weight matrix (leading axes are folded into the input axis).
      fraction: share of blocks to mask, in [0, 1).
      block_shape: (outputs, inputs) of one block.

    Returns:
      {0, 1} array of the kernel's shape and dtype.
    """
    shape = kernel.shape
    w = kernel.reshape(-1, shape[-1])
    outs, ins = block_shape
    rows, cols = w.shape
    if rows % ins or cols % outs:
        raise errors.SubscaleError(
            f"sparsity.block_shape={block_shape} does not tile a {rows}x{cols} "
            "matrix [in, out]"
        )
    scores = jnp.abs(w).reshape(rows // ins, ins, cols // outs, outs).mean((1, 3))
    count = scores.size
    k = int(round(fraction * count))
    order = jnp.argsort(scores.reshape(-1), stable=True)
    keep = jnp.ones(count, kernel.dtype).at[order[:k]].set(0.0)
    keep = keep.reshape(rows // ins, 1, cols // outs, 1)
    full = jnp.broadcast_to(keep, (rows // ins, ins, cols // outs, outs))
    return full.reshape(shape)


def compute_masks(params, fraction, cfg):
    """Masks pruning `fraction` of the blocks of every pruned matrix."""
    flat = traverse_util.flatten_dict(params)
    masks = {}
    for path, groups in pruned_matrices(params, cfg).items():
        kernel = flat[path]
        parts = jnp.split(kernel, groups, axis=-1)
        masks[path] = jnp.concatenate(
            [block_mask(p, fraction, cfg.block_shape) for p in parts], axis=-1
        )
    return traverse_util.unflatten_dict(masks)


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
    """Recomputes the masks before `step` when the schedule says so."""
    cfg = SparsityConfig.from_config(config)
    if not is_update_step(step, cfg):
        return state
    masks = _compute_jit(state.params, schedule(step, cfg), cfg)
    return state.replace(masks=masks, params=apply_masks(state.params, masks))


_compute_jit = jax.jit(compute_masks, static_argnums=(1, 2))


def sparsity_of(params, masks):
    """{matrix path: fraction of zero weights} for the masked matrices."""
    flat = traverse_util.flatten_dict(masks)
    values = traverse_util.flatten_dict(params)
    return {"/".join(path): float(jnp.mean(values[path] == 0)) for path in flat}


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
    outs, ins = block_shape
    rows, cols = w.shape
    nonzero = np.abs(w).reshape(rows // ins, ins, cols // outs, outs).max((1, 3)) > 0
    kept = [np.flatnonzero(nonzero[:, g]) for g in range(cols // outs)]
    width = max(1, max(len(k) for k in kept))
    index = np.zeros((len(kept), width), np.int32)
    valid = np.zeros((len(kept), width), bool)
    for g, k in enumerate(kept):
        index[g, : len(k)] = k
        valid[g, : len(k)] = True
    return BlockLayout(index, valid, (outs, ins), (rows, cols))


def pack_blocks(kernel, layout):
    """Kept blocks of `kernel` [in, out] as [G, K, i, o] (zero where padding)."""
    outs, ins = layout.block_shape
    rows, cols = layout.shape
    blocks = kernel.reshape(rows // ins, ins, cols // outs, outs)
    groups = np.arange(cols // outs)[:, None]
    packed = blocks[layout.index, :, groups, :]  # [G, K, i, o]
    return packed * layout.valid[..., None, None]


def block_sparse_matmul(x, packed, layout):
    """x @ kernel using only the kept blocks: [r, in] -> [r, out].

    Each group of o outputs gathers the i inputs of each of its K kept blocks,
    so the work is r * G * K * i * o multiply-adds instead of r * in * out.
    """
    outs, ins = layout.block_shape
    rows = layout.shape[0]
    gathered = x.reshape(x.shape[0], rows // ins, ins)[:, layout.index]  # [r, G, K, i]
    out = jnp.einsum("rgki,gkio->rgo", gathered, packed)
    return out.reshape(x.shape[0], layout.shape[1])
