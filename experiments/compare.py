r"""Scores trained workdirs side by side on the same held-out clips.

For each workdir: the NLL of its newest checkpoint on every eval crop (with its
coarse / fine, row and edge parts, and how much it uses its mel) and the
free-running quality of the same fixed clips vocoded from their mel
(`subscale/evaluation.py`): log-mel distance, loudness correlation, quiet-frame
excess, STOI and PESQ (`pip install -e '.[experiments]'`). Prints one markdown
table; every change to the training recipe is judged by it.

Run (from the repository root):
  python -m experiments.compare --workdirs=/tmp/demo,/tmp/demo16
  python -m experiments.compare --workdirs=/tmp/demo --clips=8 --clip_seconds=3 \
      --coarse_temperature=0.7 --prob_floor=0.002 --eval_dir=/data/held_out
"""

import json
import math

from absl import app
from absl import flags

from subscale import checkpointing
from subscale import evaluation
from subscale import input_pipeline

# (result key, column title, decimals) of the free-running metrics.
FREE_RUNNING_COLUMNS = (
    ("log_mel_db", "log-mel dB", 2),
    ("bias_low_db", "bias low", 1),
    ("bias_mid_db", "bias mid", 1),
    ("bias_high_db", "bias high", 1),
    ("loudness_corr", "loudness r", 3),
    ("quiet_excess_db", "quiet +dB", 1),
    ("stoi", "STOI", 3),
    ("pesq", "PESQ", 2),
)
# (result key, column title, decimals) of the table.
COLUMNS = (
    ("eval_bits", "NLL", 3),
    ("worst_bits", "worst", 1),
    ("over16_share", "over 16", 4),
    ("coarse_bits", "coarse", 3),
    ("fine_bits", "fine", 3),
    ("row0_bits", "row 0", 3),
    ("rows_bits", "rows 1+", 3),
    ("edge_bits", "edge", 3),
    ("middle_bits", "middle", 3),
    ("mel_gain_bits", "mel gain", 3),
    *FREE_RUNNING_COLUMNS,
)


def score(workdir, clips=4, clip_seconds=2.0, eval_dir="", sampling=None):
    """`evaluation.evaluate` of a workdir with its saved config and these clips.

    Args:
      workdir: a training workdir.
      clips: free-running clips.
      clip_seconds: seconds per clip.
      eval_dir: held-out folder ("" = the dev split of its corpus).
      sampling: {field of config.sampling: value} overrides, e.g.
        dict(coarse_temperature=0.7).

    Returns:
      The result dict (eval.json is left as it was).
    """
    config = _scoring_config(workdir, clips, clip_seconds, eval_dir, sampling)
    return evaluation.evaluate(config, workdir, write=False)


def score_free_running(workdir, clips=4, clip_seconds=2.0, eval_dir="", sampling=None):
    """Only the free-running part of `score` (the NLL does not depend on how
    a model is sampled): `step`, `clips`, `clip_seconds` and the metrics."""
    config = _scoring_config(workdir, clips, clip_seconds, eval_dir, sampling)
    _, params, _, step = checkpointing.restore_params(workdir, config)
    utterances = input_pipeline.eval_utterances(config, workdir)
    return dict(step=step, **evaluation.free_running_scores(config, params, utterances))


def _scoring_config(workdir, clips, clip_seconds, eval_dir, sampling):
    config = checkpointing.load_config(workdir)
    config.train.eval_clips = clips
    config.train.eval_clip_seconds = clip_seconds
    if eval_dir:
        config.data.eval_dir = eval_dir
    for name, value in (sampling or {}).items():
        config.sampling[name] = value
    return config


def _fmt(value, digits):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def table(names, results):
    """A markdown table: one row per (name, result dict)."""
    head = "| run | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|---" * (len(COLUMNS) + 1) + "|"
    rows = [
        f"| {name} | "
        + " | ".join(_fmt(result.get(key), d) for key, _, d in COLUMNS)
        + " |"
        for name, result in zip(names, results)
    ]
    return "\n".join([head, rule, *rows]) + "\n"


def define_flags():
    flags.DEFINE_list("workdirs", None, "Training workdirs to score.")
    flags.DEFINE_integer("clips", 4, "Free-running clips.")
    flags.DEFINE_float("clip_seconds", 2.0, "Seconds per clip.")
    flags.DEFINE_string("eval_dir", "", "Held-out folder (default: the dev split).")
    flags.DEFINE_float("temperature", None, "Sampling temperature override.")
    flags.DEFINE_float("coarse_temperature", None, "Coarse temperature override.")
    flags.DEFINE_float("prob_floor", None, "Probability floor override.")
    flags.mark_flag_as_required("workdirs")


def main(argv):
    del argv
    flag = flags.FLAGS
    sampling = {
        name: getattr(flag, name)
        for name in ("temperature", "coarse_temperature", "prob_floor")
        if getattr(flag, name) is not None
    }
    results = [
        score(w, flag.clips, flag.clip_seconds, flag.eval_dir, sampling)
        for w in flag.workdirs
    ]
    for result in results:
        print(json.dumps(result))
    print(table(flag.workdirs, results), end="")


if __name__ == "__main__":
    define_flags()
    app.run(main)
