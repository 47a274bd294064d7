r"""Block-sparse product formats on this machine: ELL blocks vs jax.experimental.sparse.

Times y = x @ W for the recurrent matrix R [H, 3H] pruned in 16x1 blocks (each
gate separately, as in training), inside a jitted `lax.scan` of `--steps` steps
like the sampler's, for x of r = 1 and r = 16 rows:

- dense: x @ W with the masked W;
- ell: `sparsity.block_sparse_matmul`, the sampler's product (the kept inputs of
  every group of 16 outputs gathered, padded to the fullest group, one batched
  product);
- bcsr, bcoo: `jax.experimental.sparse` with W as [3H / 16, H, 16], one 16-vector
  per kept block (sparse dims: group and input; one dense dim: the 16 outputs).

All run round-robin in one process; each figure is the median over --repeats.
Prints one JSON line per (format, rows).

Run (from the repository root):
  python -m experiments.sparse_formats --hidden_size=896 --sparsity=0.95
"""

import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags
from jax.experimental import sparse as jsparse

from subscale import models
from subscale import sparsity

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (`common`: defined only when run)."""
    flags.DEFINE_integer("hidden_size", 896, "H: R is [H, 3H].")
    flags.DEFINE_float("sparsity", 0.95, "Share of pruned 16x1 blocks in each gate.")
    flags.DEFINE_list("rows", ["1", "16"], "Rows r of x (B x N in the sampler).")
    flags.DEFINE_integer("steps", 2_000, "Products per timed scan.")
    flags.DEFINE_integer("repeats", 3, "Round-robin rounds.")


BLOCK = (16, 1)


def pruned_r(hidden, z, key):
    """A random R [H, 3H] with `z` of the 16x1 blocks of each gate at zero."""
    r = jax.random.normal(key, (hidden, 3 * hidden)) / np.sqrt(hidden)
    cfg = sparsity.SparsityConfig(target=z, block_shape=BLOCK, prune=("R",))
    params = models.matrix_tree({"R": r})
    masks = sparsity.compute_masks(params, z, cfg)
    return np.asarray(models.matrix(sparsity.apply_masks(params, masks), "R"))


def products(w):
    """{format: (function of (x [r, H], operand), operand)} computing x @ w."""
    hidden, out = w.shape
    groups = out // BLOCK[0]
    layout = sparsity.block_layout(w, BLOCK)
    by_group = jnp.asarray(w.reshape(hidden, groups, BLOCK[0]).transpose(1, 0, 2))
    nse = int(np.count_nonzero(np.abs(np.asarray(by_group)).max(-1)))
    bcsr = jsparse.BCSR.fromdense(by_group, nse=nse, n_dense=1)
    bcoo = jsparse.BCOO.fromdense(by_group, nse=nse, n_dense=1)
    contract = (((1,), (1,)), ((), ()))

    def from_groups(y, rows):  # [G, 16, r] -> [r, 3H]
        return y.transpose(2, 0, 1).reshape(rows, out)

    return dict(
        dense=(lambda x, m: x @ m, jnp.asarray(w)),
        ell=(
            lambda x, p: sparsity.block_sparse_matmul(x, p, layout),
            sparsity.pack_blocks(jnp.asarray(w), layout),
        ),
        bcsr=(
            lambda x, m: from_groups(
                jsparse.bcsr_dot_general(m, x, dimension_numbers=contract),
                x.shape[0],
            ),
            bcsr,
        ),
        bcoo=(
            lambda x, m: from_groups(
                jsparse.bcoo_dot_general(m, x, dimension_numbers=contract),
                x.shape[0],
            ),
            bcoo,
        ),
    )


def timed_scan(product, steps):
    """A jitted scan h <- tanh((h @ W)[:, :H]): one product per step."""

    def run(x, operand):
        hidden = x.shape[1]

        def body(h, _):
            return jnp.tanh(product(h, operand)[:, :hidden]), None

        return jax.lax.scan(body, x, None, length=steps)[0]

    return jax.jit(run)


def main(argv):
    del argv
    device = f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}"
    w = pruned_r(FLAGS.hidden_size, FLAGS.sparsity, jax.random.PRNGKey(0))
    density = sparsity.block_layout(w, BLOCK).density
    cases = []
    for rows in map(int, FLAGS.rows):
        x = jax.random.normal(jax.random.PRNGKey(rows), (rows, FLAGS.hidden_size))
        expected = np.asarray(x @ w)
        for name, (product, operand) in products(w).items():
            np.testing.assert_allclose(
                np.asarray(product(x, operand)), expected, rtol=1e-4, atol=1e-4
            )
            run = timed_scan(product, FLAGS.steps)
            jax.block_until_ready(run(x, operand))
            cases.append(dict(name=name, rows=rows, run=run, args=(x, operand)))
    for _ in range(FLAGS.repeats):
        for case in cases:
            start = time.perf_counter()
            jax.block_until_ready(case["run"](*case["args"]))
            case.setdefault("times", []).append(time.perf_counter() - start)
    dense = {
        c["rows"]: statistics.median(c["times"]) for c in cases if c["name"] == "dense"
    }
    for case in cases:
        seconds = statistics.median(case["times"])
        print(
            json.dumps(
                dict(
                    format=case["name"],
                    rows=case["rows"],
                    hidden_size=FLAGS.hidden_size,
                    sparsity=FLAGS.sparsity,
                    density=round(density, 4),
                    block_shape="16x1",
                    ms_per_product=round(1e3 * seconds / FLAGS.steps, 4),
                    speedup_vs_dense=round(dense[case["rows"]] / seconds, 2),
                    device=device,
                )
            ),
            flush=True,
        )


if __name__ == "__main__":
    define_flags()
    app.run(main)
