r"""Peak memory of streaming generation: 10 minutes against 1 minute of audio.

Each length runs in a fresh subprocess that builds a model with random
parameters, streams the whole utterance with `Vocoder.generate_stream` (writing
nothing), and reports its peak resident set size (ru_maxrss). Prints one JSON
line per length and one with the ratio.

Run (from the repository root):
  python -m experiments.stream_memory --minutes=1,10 --hidden_size=64 \
      > experiments/stream_memory.jsonl

stream_memory.jsonl holds the output of that command at commit a45bcc9 on the
2-core development machine (10 minutes: 1.16x the peak RSS of 1 minute).
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (`common`: defined only when run)."""
    flags.DEFINE_list("minutes", ["1", "10"], "Audio lengths in minutes.")
    flags.DEFINE_integer("hidden_size", 64, "GRU size (memory hardly depends on it).")
    flags.DEFINE_integer("subscale_factor", 16, "B.")
    flags.DEFINE_integer("chunk_frames", 400, "Frames per streamed chunk.")
    flags.DEFINE_float("child_minutes", None, "Internal: run one length here.")


HOP = 200
# The child runs this module and imports `configs`, which live beside `subscale`
# in the repository; it imports no more than it needs, since its memory is the
# measurement.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(minutes):
    import numpy as np

    import subscale
    from configs import default

    config = default.get_config()
    config.model.hidden_size = FLAGS.hidden_size
    config.model.subscale_factor = FLAGS.subscale_factor
    config.model.future_horizon = 16
    config.model.lookback = 32
    config.data.seq_len = 3_200
    vocoder = subscale.create(config, seed=0)
    frames = int(minutes * 60 * config.data.sample_rate) // HOP
    mel = np.full((frames, config.data.n_mels), -4.0, np.float32)
    start = time.perf_counter()
    samples = 0
    for chunk in vocoder.generate_stream(mel, FLAGS.chunk_frames):
        samples += chunk.shape[0]
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            dict(
                minutes=minutes,
                samples=samples,
                seconds=round(seconds, 1),
                peak_rss_mb=round(peak_mb, 1),
                hidden_size=FLAGS.hidden_size,
                subscale_factor=FLAGS.subscale_factor,
                chunk_frames=FLAGS.chunk_frames,
            )
        ),
        flush=True,
    )


def main(argv):
    del argv
    if FLAGS.child_minutes is not None:
        child(FLAGS.child_minutes)
        return
    results = []
    for minutes in map(float, FLAGS.minutes):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "experiments.stream_memory",
                f"--child_minutes={minutes}",
                f"--hidden_size={FLAGS.hidden_size}",
                f"--subscale_factor={FLAGS.subscale_factor}",
                f"--chunk_frames={FLAGS.chunk_frames}",
            ],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )
        line = out.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        results.append(json.loads(line))
    print(
        json.dumps(
            dict(
                peak_rss_ratio=round(
                    results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"], 3
                ),
                lengths_minutes=[r["minutes"] for r in results],
            )
        )
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
