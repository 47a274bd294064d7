r"""Training speed: optimizer steps and trained samples per second of a config.

Times the jitted `train.Trainer.train_step` on random batches of the config's
shapes (no data loading: the input pipeline precomputes its features and never
starves the step). Prints one JSON line per config.

Run (from the repository root):
  python -m experiments.benchmark_training --config=configs/demo.py
  python -m experiments.benchmark_training --config=configs/demo.py \
      --config.model.hidden_size=128 --steps=30
  XLA_FLAGS=--xla_force_host_platform_device_count=2 \
      python -m experiments.benchmark_training --config=configs/demo.py
"""

import json
import time

import jax
import numpy as np
from absl import app
from absl import flags

from experiments import common
from subscale import models
from subscale import train

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (`common`: defined only when run)."""
    common.define_config_flag("Training config.")
    flags.DEFINE_integer("steps", 20, "Timed steps (after two warm-up steps).")


def random_batch(config, margins, rng):
    """A batch of the config's training shapes with random samples and mel,
    with `margins` (left, right) columns of context inputs around each crop
    when the config feeds crop context (`data.crop_context`)."""
    d, t = config.data, config.train
    frames = d.seq_len // d.hop_length + 2 * models.MEL_PAD
    batch = dict(
        samples=rng.integers(-3000, 3000, (t.batch_size, d.seq_len), np.int16),
        mel=rng.normal(-4.0, 1.0, (t.batch_size, frames, d.n_mels)).astype(
            np.float32
        ),
    )
    if margins != (0, 0):
        width = d.seq_len + int(config.model.subscale_factor) * sum(margins)
        inputs = rng.integers(-3000, 3000, (t.batch_size, width), np.int16)
        batch["inputs"] = inputs
        batch["inputs_valid"] = np.ones(inputs.shape, bool)
    return batch


def main(argv):
    del argv
    print(json.dumps(measure(FLAGS.config, FLAGS.steps)), flush=True)


def measure(config, steps):
    """Times `steps` train steps of `config` after two warm-up steps.

    Returns:
      A dict: the model and batch sizes, compile_s, steps_per_second,
      samples_per_second (trained samples), samples_per_cpu_second (per
      second of this process's CPU time) and the device.
    """
    trainer = train.Trainer(config)
    state = trainer.init_state(0)
    d, t = config.data, config.train
    rng = np.random.default_rng(0)
    batch = trainer.shard(random_batch(config, trainer.margins, rng))
    start = time.perf_counter()
    state, out = trainer.train_step(state, batch)
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - start
    state, out = trainer.train_step(state, batch)
    jax.block_until_ready(out)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        state, out = trainer.train_step(state, batch)
    jax.block_until_ready((state, out))
    seconds = (time.perf_counter() - start) / steps
    cpu_seconds = (time.process_time() - cpu_start) / steps
    m = config.model
    return dict(
        hidden_size=m.hidden_size,
        subscale_factor=m.subscale_factor,
        batch_size=t.batch_size,
        seq_len=d.seq_len,
        devices=jax.device_count(),
        compile_s=round(compile_s, 2),
        steps_per_second=round(1.0 / seconds, 3),
        samples_per_second=round(t.batch_size * d.seq_len / seconds),
        samples_per_cpu_second=round(t.batch_size * d.seq_len / cpu_seconds),
        device=f"{jax.devices()[0].platform} ({common.cpu_model()})",
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
