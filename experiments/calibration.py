r"""How well calibrated a model's teacher-forced predictions are, by part.

For each softmax (coarse, fine) and each part of the fold (row 0, the
sub-sequence drawn first from the mel and the distant past, on which every
free-running clip rests; rows 1+), over the same held-out crops: the NLL of
the true class, the entropy of the predicted distribution (a calibrated model
has the two equal on average; NLL above entropy is over-confidence), the
entropy at temperature 0.6 (what free-running draws from by default) and the
mean probability of the most likely class. All without the uniform tail,
which only bounds the NLL and is never drawn.

Run (from the repository root):
  python -m experiments.calibration --workdirs=speech16k,runs/speech16k \
      --yardstick=runs/speech16k --crops=64
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags

from experiments import compare
from subscale import audio
from subscale import evaluation
from subscale import input_pipeline
from subscale import models

PARTS = ("row0", "rows")
STATS = ("nll", "entropy", "entropy_t", "top")


def _sums(model, params, batch, margins, temperature):
    logits_c, logits_f = models.apply_to_batch(model, params, batch, margins, "logits")
    coarse, fine = audio.split(batch["samples"])
    weights = batch["weights"][:, None]
    row0 = evaluation.row_zero(logits_c.shape[1], model.cfg.subscale_factor)[None]
    out = {}
    softmaxes = (("coarse", logits_c, coarse), ("fine", logits_f, fine))
    for name, logits, target in softmaxes:
        logp = jax.nn.log_softmax(logits, -1)
        classes = target[..., None].astype(jnp.int32)
        nll = -jnp.take_along_axis(logp, classes, -1)[..., 0]
        cooled = jax.nn.log_softmax(logits / temperature, -1)
        stats = dict(
            nll=nll,
            entropy=-(jnp.exp(logp) * logp).sum(-1),
            entropy_t=-(jnp.exp(cooled) * cooled).sum(-1),
            top=jnp.exp(logp.max(-1)),
        )
        for part, mask in (("row0", row0), ("rows", ~row0)):
            mask = mask * weights
            out[f"{name}_{part}_count"] = mask.sum()
            for stat, value in stats.items():
                out[f"{name}_{part}_{stat}"] = (value * mask).sum()
    return out


def calibration(config, params, home, crops=64, temperature=0.6):
    """{softmax: {part: {nll, entropy, entropy_t (bits), top}}} over the eval
    crops of `config` (features cached in `home`)."""
    model = models.SubscaleWaveRNN(models.ModelConfig.from_config(config))
    utterances = input_pipeline.eval_utterances(config, home)
    data = input_pipeline.eval_crops_of(config, utterances, models.MEL_PAD, crops)
    margins = tuple(input_pipeline.context_columns(config))
    sums = jax.jit(
        functools.partial(_sums, model, margins=margins, temperature=temperature)
    )
    totals = evaluation.sum_over_crops(sums, params, data, config.train.batch_size)
    result = {}
    for name in ("coarse", "fine"):
        result[name] = {}
        for part in PARTS:
            count = totals[f"{name}_{part}_count"]
            if not count:
                continue
            mean = {s: totals[f"{name}_{part}_{s}"] / count for s in STATS}
            bits = {s: mean[s] / np.log(2.0) for s in STATS if s != "top"}
            result[name][part] = dict(bits, top=mean["top"])
    return result


def table(names, results, temperature):
    head = (
        f"| run | softmax, part | NLL bits | entropy | NLL - entropy "
        f"| entropy at T {temperature:g} | top class p |"
    )
    rows = [head, "|---" * 7 + "|"]
    for name, result in zip(names, results):
        for softmax, parts in result.items():
            for part, s in parts.items():
                rows.append(
                    f"| {name} | {softmax}, {part} | {s['nll']:.3f} | "
                    f"{s['entropy']:.3f} | {s['nll'] - s['entropy']:+.3f} | "
                    f"{s['entropy_t']:.3f} | {s['top']:.3f} |"
                )
    return "\n".join(rows) + "\n"


def main(argv):
    del argv
    flag = flags.FLAGS
    results = []
    for workdir in flag.workdirs:
        config, params, _ = compare.restore_on(workdir, flag.yardstick, flag.average)
        with compare.feature_home(workdir, flag.yardstick) as home:
            results.append(
                calibration(config, params, home, flag.crops, flag.temperature)
            )
    print(table(flag.workdirs, results, flag.temperature), end="")


if __name__ == "__main__":
    flags.DEFINE_list("workdirs", None, "Workdirs, model folders or packaged names.")
    flags.DEFINE_string("yardstick", "", "Score on this run's held-out data.")
    flags.DEFINE_integer("crops", 64, "Evenly spaced eval crops (0 = every crop).")
    flags.DEFINE_float("temperature", 0.6, "Temperature of the cooled entropy.")
    flags.DEFINE_bool("average", True, "The moving average of the weights if kept.")
    flags.mark_flag_as_required("workdirs")
    app.run(main)
