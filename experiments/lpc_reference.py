r"""The classical reference NLL: a forward-adaptive LPC coder on the eval crops.

Scores exactly the crops `--mode=evaluate` scores (the dev split, or
`--config.data.eval_dir`, cut into `data.eval_seq_len` crops) with
`baselines.lpc_bits`, for a few predictor orders and residual models, and prints
one JSON line each, in bits per sample. A vocoder's NLL below these figures
predicts speech better than per-frame linear prediction with free side
information.

Run:
  python experiments/lpc_reference.py --config=configs/demo.py
  python experiments/lpc_reference.py --config=configs/demo.py \
      --config.data.eval_dir=/data/other_speakers
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from subscale import baselines  # noqa: E402
from subscale import train  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config (data fields).", lock_config=True
)
flags.DEFINE_list("orders", ["16", "32"], "Predictor orders.")
flags.DEFINE_list("distributions", ["laplace", "gaussian"], "Residual models.")
flags.DEFINE_integer("frame", 320, "Samples per LPC frame.")


def reference(config, orders, distributions, frame, workdir):
    """[{order, distribution, bits, samples, crops}] on the eval crops."""
    data, _ = train.eval_data(config, workdir, 0)
    crops = data["samples"]
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
                    data=config.data.eval_dir or f"{config.data.train_dir} (dev split)",
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
    flags.mark_flags_as_required(["config"])
    app.run(main)
