r"""Sparse vs dense at an equal number of non-zero weights (the paper's Fig. 2, small).

For each dense hidden size h and each widening factor k, trains the dense model
of hidden h and a sparse model of hidden H = k h whose recurrent matrix R is
pruned to z = 1 - 1 / k^2 in 16x1 blocks (each gate separately, on the cubic
schedule of docs/design.md, "Sparse path"), so that both hold 3 h^2 non-zeros
in R. Every model gets the same training budget (steps, crops, learning-rate
schedule) from --base_config, then its dev NLL is measured on the same dev
crops (`evaluation.evaluate`). The paper found the large sparse model better at
every sparsity up to 96 %.

The pruning starts at 5 % of the steps and reaches z at 45 %, so the last 55 %
train at the final sparsity (the paper: t0 = 1k, S = 200k of 500k steps), with
a mask update every 1 % of the steps.

Outputs under --workdir: `runs/<name>/` (training workdirs, ignored by git;
a re-run reuses finished runs and resumes unfinished ones), `results.jsonl`
(one line per model), `results.md` and `nll_vs_sparsity.png`.

Run (from the repository root; the full run trains 3 models on the demo corpus,
the 512-unit one takes the longest, about an hour on 2 CPU cores):
  python -m experiments.sparse_vs_dense
  python -m experiments.sparse_vs_dense --quick --workdir=workdirs/sparse_vs_dense_quick
  python -m experiments.sparse_vs_dense --dense_hidden=64,128 --widen=2,4 \
      --max_hidden=256 --num_steps=800
"""

import dataclasses
import json
import os

import jax
import numpy as np
from absl import app
from absl import flags
from absl import logging
from matplotlib import figure

from experiments import common
from subscale import checkpointing
from subscale import config_validation
from subscale import evaluation
from subscale import models

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (`common`: defined only when run)."""
    common.define_training_flags(
        "sparse_vs_dense",
        num_steps_quick=6,
        quick_help="Tiny models (configs/tiny.py sizes) and a few steps: the whole "
        "pipeline in a minute or two.",
    )
    flags.DEFINE_list("dense_hidden", None, "Dense hidden sizes h. [128]; quick [16]")
    flags.DEFINE_list("widen", None, "Factors k: sparse hidden k h. [2,4]; quick [2]")
    flags.DEFINE_integer("max_hidden", None, "Skip sparse models wider than this.")


BLOCK_SHAPE = (16, 1)
# Pruning schedule as fractions of the training steps (see the docstring).
START, RAMP, EVERY = 0.05, 0.40, 0.01


@dataclasses.dataclass(frozen=True)
class Options:
    """What to run; the defaults are the full experiment (`quick_options`)."""

    workdir: str
    dense_hidden: tuple = (128,)
    widen: tuple = (2, 4)
    max_hidden: int | None = None  # sparse models wider than this are skipped
    num_steps: int | None = None  # None: the base config's
    quick: bool = False


def quick_options(**given):
    """Options of a --quick run; `given` overrides any field."""
    fields = dict(dense_hidden=(16,), widen=(2,), num_steps=6, quick=True)
    return Options(**{**fields, **given})


@dataclasses.dataclass(frozen=True)
class Run:
    """One trained model: its name, sizes and training config."""

    name: str
    dense_hidden: int  # h of its group (the dense model with as many non-zeros)
    hidden: int
    sparsity: float  # target z of R
    config: object


def base_for(config, options):
    """The base config of the experiment (the tiny sizes in quick mode)."""
    return common.base_config(
        config, options.workdir, quick=options.quick, num_steps=options.num_steps
    )


def run_config(base, hidden, z):
    """`base` at hidden size `hidden`, R pruned to `z` over the training budget."""
    config = base.copy_and_resolve_references()
    config.model.hidden_size = hidden
    steps = config.train.num_steps
    s = config.sparsity
    s.target = z
    s.start_step = int(START * steps)
    s.ramp_steps = max(1, int(RAMP * steps))
    s.every_steps = max(1, int(EVERY * steps))
    s.block_shape = BLOCK_SHAPE
    s.prune = ("R",)
    config_validation.validate(config)
    return config


def make_runs(base, options):
    """For each h: the dense model, then one sparse model per widening factor
    (up to `max_hidden`). Names carry the sparsity: one hidden size may appear in
    several groups."""
    runs = []
    for h in options.dense_hidden:
        runs.append(Run(f"dense{h}", h, h, 0.0, run_config(base, h, 0.0)))
        for k in options.widen:
            if options.max_hidden and k * h > options.max_hidden:
                continue
            z = 1.0 - 1.0 / k**2
            name = f"sparse{k * h}_z{100 * z:g}"
            runs.append(Run(name, h, k * h, z, run_config(base, k * h, z)))
    return runs


def train_and_measure(run, options):
    """Trains `run` to its budget (reusing a finished run) and measures it."""
    workdir = os.path.join(options.workdir, "runs", run.name)
    seconds = common.train_to_budget(run.name, run.config, workdir)
    result = evaluation.evaluate(run.config, workdir)
    _, params, _, step = checkpointing.restore_params(workdir, run.config)
    r = np.asarray(models.matrix(params, "R"))
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]
    return dict(
        name=run.name,
        dense_hidden=run.dense_hidden,
        hidden=run.hidden,
        target_sparsity=round(run.sparsity, 4),
        sparsity_R=round(float(np.mean(r == 0)), 4),
        nonzeros_R=int(np.count_nonzero(r)),
        nonzeros=int(sum(np.count_nonzero(x) for x in leaves)),
        parameters=int(sum(x.size for x in leaves)),
        step=step,
        dev_bits=result["eval_bits"],
        dev_nats=result["eval_nats"],
        dev_samples=result["samples"],
        train_seconds=None if seconds is None else round(seconds, 1),
    )


def markdown(records, command):
    """The results table; "vs dense" is the difference to the dense model of the
    same number of non-zeros in R (negative: the sparse model is better)."""
    lines = [
        "# Sparse vs dense at equal non-zeros in R",
        "",
        *common.provenance(command),
        "- Training: every model gets the base config's steps, crops and "
        "learning-rate schedule; R pruned in 16x1 blocks on the cubic schedule; "
        "dev NLL on every dev crop (`evaluation.evaluate`).",
        "",
        "| model | hidden | sparsity of R | non-zeros in R | non-zeros in all | "
        "dev bits/sample | dev nats/sample | vs dense |",
        "|---|---|---|---|---|---|---|---|",
    ]
    dense = {
        r["dense_hidden"]: r["dev_bits"]
        for r in records
        if r["hidden"] == r["dense_hidden"]
    }
    for r in records:
        delta = r["dev_bits"] - dense[r["dense_hidden"]]
        lines.append(
            f"| {r['name']} | {r['hidden']} | {r['sparsity_R']:.3f} | "
            f"{r['nonzeros_R']:,} | {r['nonzeros']:,} | {r['dev_bits']:.4f} | "
            f"{r['dev_nats']:.4f} | {delta:+.4f} |"
        )
    return "\n".join(lines) + "\n"


def plot(records, path):
    """Dev NLL against the sparsity of R, one line per number of non-zeros."""
    fig = figure.Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for h in dict.fromkeys(r["dense_hidden"] for r in records):
        group = [r for r in records if r["dense_hidden"] == h]
        ax.plot(
            [r["sparsity_R"] for r in group],
            [r["dev_bits"] for r in group],
            "o-",
            label=f"{3 * h * h:,} non-zeros in R (dense {h})",
        )
        for r in group:
            ax.annotate(str(r["hidden"]), (r["sparsity_R"], r["dev_bits"]), fontsize=8)
    ax.set_xlabel("sparsity of R (labels: hidden size)")
    ax.set_ylabel("dev NLL (bits / sample)")
    ax.set_title("Large sparse vs small dense, equal non-zeros")
    ax.legend(fontsize=8)
    fig.tight_layout()
    common.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))


def run_experiment(base_config, options, command=""):
    """Trains and measures every model; writes and returns the records."""
    base = base_for(base_config, options)
    common.make_runs_folder(options.workdir)
    records = []
    for run in make_runs(base, options):
        record = train_and_measure(run, options)
        logging.info("%s", json.dumps(record))
        records.append(record)
    common.write_jsonl(os.path.join(options.workdir, "results.jsonl"), records)
    common.write_text(
        os.path.join(options.workdir, "results.md"), markdown(records, command)
    )
    plot(records, os.path.join(options.workdir, "nll_vs_sparsity.png"))
    return records


def main(argv):
    del argv
    given = dict(workdir=FLAGS.workdir)
    if FLAGS.dense_hidden:
        given["dense_hidden"] = tuple(int(h) for h in FLAGS.dense_hidden)
    if FLAGS.widen:
        given["widen"] = tuple(int(k) for k in FLAGS.widen)
    if FLAGS.num_steps is not None:
        given["num_steps"] = FLAGS.num_steps
    if FLAGS.max_hidden is not None:
        given["max_hidden"] = FLAGS.max_hidden
    options = quick_options(**given) if FLAGS.quick else Options(**given)
    command = common.command_line("sparse_vs_dense")
    for record in run_experiment(FLAGS.base_config, options, command):
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
