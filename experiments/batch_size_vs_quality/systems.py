"""The systems compared: Subscale WaveRNN at each B and F, and the baselines."""

import dataclasses
import os
from typing import Any

from absl import logging

from experiments import common
from subscale import config_validation

# Grid columns per training crop at least (B > 1): rows of shorter crops spend
# most of the crop in the zero-state start-up and in the context network's
# zero padding (it reads W + F + 1 = 49 columns at the defaults).
MIN_COLUMNS = 200
# The model that fold-and-crossfade batches.
FOLD_MODEL = "B1"


@dataclasses.dataclass(frozen=True, eq=False)
class System:
    """One column of the comparison.

    Attributes:
      name: short label, also the folder name of its files.
      kind: "model" (a trained Subscale WaveRNN; B = 1 is plain WaveRNN),
        "fold" (fold-and-crossfade with the B = 1 model), "griffin_lim" or
        "original".
      subscale_factor: B of a model, else None.
      future_horizon: F of a model (0 at B = 1), else None.
      num_chunks: N, the chunks of a fold, else None.
      config: the training config of a model, else None.
    """

    name: str
    kind: str
    subscale_factor: int | None = None
    future_horizon: int | None = None
    num_chunks: int | None = None
    config: Any = None

    @property
    def model(self):
        """The trained model whose parameters it samples with, or None."""
        if self.kind == "model":
            return self.name
        if self.kind == "fold":
            return FOLD_MODEL
        return None


def model_name(factor, horizon):
    return "B1" if factor == 1 else f"B{factor}_F{horizon}"


def base_for(config, options):
    """The base config of the experiment (the tiny sizes in quick mode)."""
    config = common.base_config(
        config, options.workdir, quick=options.quick, num_steps=options.num_steps
    )
    if options.quick:
        # One log, eval and checkpoint at the end: the steps are the cheap part.
        steps = config.train.num_steps
        config.train.log_every_steps = steps
        config.train.eval_every_steps = steps
        config.train.checkpoint_every_steps = steps
    if options.eval_dir:
        config.data.eval_dir = options.eval_dir
    # The same eval crops for every B, so that the NLLs compare.
    if not config.data.eval_seq_len:
        config.data.eval_seq_len = config.data.seq_len * config.train.batch_size
    return config


def model_config(base, factor, horizon, lookback):
    """`base` at subscale factor B with the same samples per training step.

    Crops are k times longer and batches k times smaller, k the smallest divisor
    of the batch size that gives each row MIN_COLUMNS columns (else the batch).
    """
    config = base.copy_and_resolve_references()
    d, t, m = config.data, config.train, config.model
    need = -(-factor * MIN_COLUMNS // d.seq_len)
    k = next(
        (k for k in range(need, t.batch_size + 1) if t.batch_size % k == 0),
        t.batch_size,
    )
    d.seq_len *= k
    t.batch_size //= k
    m.subscale_factor = factor
    m.future_horizon = horizon if factor > 1 else 0
    m.lookback = lookback if factor > 1 else 0
    config_validation.validate(config)
    return config


def make_systems(base, options):
    """Models of the B sweep and the F sweep at B = 16, then the baselines."""
    pairs = [(b, options.future_horizon if b > 1 else 0) for b in options.factors]
    pairs += [(16, f) for f in options.horizons]
    systems = [
        System(
            model_name(b, f),
            "model",
            subscale_factor=b,
            future_horizon=f,
            config=model_config(base, b, f, options.lookback),
        )
        for b, f in dict.fromkeys(pairs)
    ]
    if 1 in options.factors:
        systems += [
            System(f"fold{n}", "fold", num_chunks=n) for n in options.fold_chunks
        ]
    else:
        logging.warning("No B = 1 model: the fold-and-crossfade baseline is skipped.")
    systems += [System("griffin_lim", "griffin_lim"), System("original", "original")]
    return systems


def run_dir(options, system):
    """The training workdir of a model."""
    return os.path.join(options.workdir, "runs", system.name)


def train_models(systems, options):
    """Trains every model that has no checkpoint at num_steps yet."""
    common.make_runs_folder(options.workdir)
    for system in systems:
        if system.kind == "model":
            common.train_to_budget(system.name, system.config, run_dir(options, system))
