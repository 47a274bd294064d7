r"""The mean of a run's last checkpoints against its newest, on one yardstick.

Checkpoint averaging is the uniform cousin of the moving average of the
weights (`train.ema_decay`, docs/design.md "Training recipe"): it asks of a
run that keeps no average whether the jitter of its weights costs NLL and
free-running quality. A run keeps only `train.keep_checkpoints` checkpoints, so
--checkpoints names a folder of step folders gathered from its
`checkpoints/` while it trained (each copied once it appeared), beside the
run's workdir, whose config and feature cache are used.

Run (from the repository root):
  python -m experiments.checkpoint_average --workdir=runs/speech16k \
      --checkpoints=/tmp/gathered --last=4,7 --crops=64 --clips=16
"""

import os
import tempfile

import jax
import numpy as np
from absl import app
from absl import flags

from experiments import common
from experiments import compare
from subscale import checkpointing
from subscale import errors
from subscale import evaluation
from subscale import pretrained

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("workdir", None, "The run's workdir.", required=True)
    flags.DEFINE_string(
        "checkpoints", None, "A folder of the run's step folders.", required=True
    )
    flags.DEFINE_list("last", ["4"], "Average the last N checkpoints, for each N.")
    flags.DEFINE_integer("crops", 64, "NLL on this many dev crops (0 = every one).")
    flags.DEFINE_integer("clips", 16, "Free-running dev clips.")
    flags.DEFINE_float("clip_seconds", 2.0, "Seconds per clip.")
    flags.DEFINE_integer(
        "seed", 0, "Draws: clip n is sampled with fold_in(PRNGKey(seed), n)."
    )


def steps_in(folder):
    """The step folders in `folder`, in order."""
    steps = sorted(int(name) for name in os.listdir(folder) if name.isdigit())
    if not steps:
        raise errors.SubscaleError(f"--checkpoints={folder}: no step folders in it")
    return steps


def params_at(config_path, folder, step, scratch):
    """The parameters of checkpoint `step` in `folder`, read as a workdir of
    that one checkpoint (the weights themselves, not a moving average)."""
    workdir = os.path.join(scratch, str(step))
    os.makedirs(os.path.join(workdir, "checkpoints"))
    os.symlink(os.path.abspath(config_path), os.path.join(workdir, "config.json"))
    os.symlink(
        os.path.abspath(os.path.join(folder, str(step))),
        os.path.join(workdir, "checkpoints", str(step)),
    )
    _, params, restored = pretrained.restore(workdir, average=False)
    assert restored == step, (restored, step)
    return params


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config_path = os.path.join(FLAGS.workdir, "config.json")
    config = checkpointing.load_config(FLAGS.workdir)
    config.train.eval_clips = FLAGS.clips
    config.train.eval_clip_seconds = FLAGS.clip_seconds
    steps = steps_in(FLAGS.checkpoints)
    with tempfile.TemporaryDirectory() as scratch:
        every = [params_at(config_path, FLAGS.checkpoints, s, scratch) for s in steps]
    rows = [(f"step {steps[-1]}", every[-1])]
    for n in sorted({min(int(n), len(steps)) for n in FLAGS.last}):
        mean = jax.tree_util.tree_map(lambda *a: np.mean(a, axis=0), *every[-n:])
        rows.append((f"mean of steps {steps[-n]}-{steps[-1]} ({n})", mean))
    names, results = [], []
    for name, params in rows:
        result = evaluation.evaluate(
            config,
            FLAGS.workdir,
            params=params,
            step=steps[-1],
            write=False,
            max_crops=FLAGS.crops,
            seed=FLAGS.seed,
        )
        names.append(name)
        results.append(result)
    command = common.command_line("checkpoint_average")
    print("\n".join(common.provenance(command)))
    print(compare.table(names, results), end="")


if __name__ == "__main__":
    define_flags()
    app.run(main)
