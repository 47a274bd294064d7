r"""The classical reference NLL: a forward-adaptive LPC coder on the eval crops.

Scores exactly the crops `--mode=evaluate` scores (the dev split, or
`--config.data.eval_dir`, cut into `data.eval_seq_len` crops) with
`baselines.lpc_bits`, for a few predictor orders and residual models, and prints
one JSON line each, in bits per sample. A vocoder's NLL below these figures
predicts speech better than per-frame linear prediction with free side
information.

Run (from the repository root):
  python -m experiments.lpc_reference --config=configs/demo.py
  python -m experiments.lpc_reference --config=configs/demo.py \
      --config.data.eval_dir=/data/other_speakers
"""

import json
import tempfile

import numpy as np
from absl import app
from absl import flags

from experiments import common
from subscale import baselines
from subscale import evaluation
from subscale import input_pipeline
from subscale import models

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (`common`: defined only when run)."""
    common.define_config_flag("Config (data fields).")
    flags.DEFINE_list("orders", ["16", "32"], "Predictor orders.")
    flags.DEFINE_list("distributions", ["laplace", "gaussian"], "Residual models.")
    flags.DEFINE_integer("frame", 320, "Samples per LPC frame.")


def reference(
    config, orders, distributions, frame, workdir, max_crops=0, utterances=None
):
    """[{order, distribution, bits, samples, crops}] on the eval crops (every
    one, or `max_crops` evenly spaced ones when > 0: those a training run's
    periodic evaluation scores with `train.eval_crops`) of `utterances`, or of
    `input_pipeline.eval_utterances` when None."""
    if utterances is None:
        utterances = input_pipeline.eval_utterances(config, workdir)
    crops = input_pipeline.eval_crops_of(config, utterances, models.MEL_PAD, max_crops)[
        "samples"
    ]
    results = []
    for order in orders:
        for distribution in distributions:
            bits = [
                baselines.lpc_bits(
                    c, order=order, frame=frame, distribution=distribution
                )
                for c in crops
            ]
            results.append(
                dict(
                    order=order,
                    distribution=distribution,
                    frame=frame,
                    bits=float(np.mean(np.concatenate(bits))),
                    samples=int(crops.size),
                    crops=int(crops.shape[0]),
                    data=evaluation.data_label(config),
                )
            )
    return results


def main(argv):
    del argv
    config = FLAGS.config
    orders = [int(o) for o in FLAGS.orders]
    with tempfile.TemporaryDirectory() as scratch:  # features cache
        for line in reference(
            config, orders, FLAGS.distributions, FLAGS.frame, scratch
        ):
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
