r"""Writes the resume bundle of a training run's newest checkpoint.

The bundle (`subscale/resume.py`) is what a new machine needs to continue the
run exactly: commit it, and on the next machine

  python -m subscale.main --config=CONFIG --workdir=DIR \
      --config.train.resume_from=BUNDLE

continues from its step with the same schedule, data order and Adam moments.

Run (from the repository root, after stopping the run, e.g. with SIGTERM,
which checkpoints the current step):
  python -m experiments.resume_bundle --workdir=runs/speech16k \
      --output=experiments/results/speech16k/resume
"""

import json

from absl import app
from absl import flags

from experiments import export_pretrained
from subscale import checkpointing
from subscale import errors
from subscale import resume
from subscale import train

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("workdir", None, "The training run's workdir.", required=True)
    flags.DEFINE_string("output", None, "The bundle folder (replaced).", required=True)
    flags.DEFINE_enum(
        "moments",
        "bfloat16",
        list(resume.MOMENTS),
        "Adam moments: bfloat16 (half the size) or float32 (exact).",
    )


def write_bundle(workdir, output, moments="bfloat16", step=None):
    """Writes the bundle of `workdir`'s checkpoint at `step` (default: the
    newest); returns its bundle.json."""
    config = checkpointing.load_config(workdir)
    trainer = train.Trainer(config)
    mngr = checkpointing.manager(workdir, config, read_only=True)
    try:
        state, step = checkpointing.restore(mngr, trainer.abstract_state(), step)
    finally:
        mngr.close()
    if state is None:
        raise errors.SubscaleError(f"{workdir}: no checkpoint to bundle")
    records = export_pretrained.read_metrics(workdir)
    spent = export_pretrained.cost([r for r in records if r["step"] <= step])
    return resume.write(output, state, config, workdir, moments, cost=spent)


def main(argv):
    del argv
    info = write_bundle(FLAGS.workdir, FLAGS.output, FLAGS.moments)
    print(json.dumps(dict(step=info["step"], moments=info["moments"], **info["cost"])))


if __name__ == "__main__":
    define_flags()
    app.run(main)
