r"""Scores trained workdirs and packaged models side by side on the same
held-out clips.

For each workdir (or exported model): the NLL of its newest checkpoint on every
eval crop, or --crops of them (with its
coarse / fine, row and edge parts, and how much it uses its mel) and the
free-running quality of the same fixed clips vocoded from their mel
(`subscale/evaluation.py`): log-mel distance, loudness correlation, quiet-frame
excess, STOI and PESQ (`pip install -e '.[experiments]'`), with --by_voice
also for each voice's clips. Prints one markdown table (and one of the
voices); every change to the training recipe is judged by it.

Each run is scored on its own held-out data, or with --yardstick=RUN on the
held-out data of RUN's config (`YARDSTICK_FIELDS`), e.g. a packaged model beside
the workdir that may replace it.

Run (from the repository root):
  python -m experiments.compare --workdirs=/tmp/demo,/tmp/demo16
  python -m experiments.compare --workdirs=runs/speech16k,speech16k \
      --yardstick=runs/speech16k --crops=64 --clips=4
  python -m experiments.compare --workdirs=runs/speech16k,speech16k \
      --yardstick=runs/speech16k --crops=1 --clips=48 --by_voice
  python -m experiments.compare --workdirs=/tmp/demo --clips=8 --clip_seconds=3 \
      --coarse_temperature=0.7 --prob_floor=0.002 --eval_dir=/data/held_out
"""

import contextlib
import json
import math
import os
import tempfile

from absl import app
from absl import flags

from subscale import checkpointing
from subscale import distribution
from subscale import evaluation
from subscale import input_pipeline
from subscale import pretrained

# The config fields that say which held-out audio a run is scored on; the
# features (mel, emphasis) and crop shapes stay each model's own.
YARDSTICK_FIELDS = (
    ("data", "train_dir"),
    ("data", "eval_dir"),
    ("data", "dev_fraction"),
    ("data", "resample"),
    ("data", "skip_bad_files"),
)

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


def score(
    workdir,
    clips=4,
    clip_seconds=2.0,
    eval_dir="",
    sampling=None,
    yardstick="",
    crops=0,
    average=True,
    by_voice=False,
    tail_mass=None,
    seed=0,
):
    """`evaluation.evaluate` of a run with its saved config and these clips.

    Args:
      workdir: a training workdir, an exported model folder or a packaged
        model's name (`pretrained.restore`).
      clips: free-running clips.
      clip_seconds: seconds per clip.
      eval_dir: held-out folder ("" = the dev split of its corpus).
      sampling: {field of config.sampling: value} overrides, e.g.
        dict(coarse_temperature=0.7).
      yardstick: "" or a run whose held-out data (`YARDSTICK_FIELDS`) this one
        is scored on; its feature cache serves both. A model folder or name
        needs one that is a workdir, or it is its own.
      crops: NLL on this many evenly spaced eval crops (0 = every crop).
      average: a workdir's moving average of the weights when it keeps one
        (`train.ema_decay`); False: the weights themselves.
      by_voice: also the free-running metrics of each voice's clips
        (`input_pipeline.voices`), as `by_voice` {voice: metrics and `clips`}.
      tail_mass: None, or the uniform tail (`model.tail_mass`) its NLL is
        scored with instead of its own: the tail is never drawn, so this
        scores the same sampler under a bounded likelihood, as the packaged
        first edition got its tail after training.
      seed: clip n is drawn with fold_in(PRNGKey(seed), n).

    Returns:
      The result dict (eval.json is left as it was).
    """
    config, params, step = restore_on(workdir, yardstick, average)
    _set_scoring(config, clips, clip_seconds, eval_dir, sampling)
    if tail_mass is not None:
        distribution.check_tail_mass(tail_mass, "--tail_mass")
        config.model.tail_mass = tail_mass

    with feature_home(workdir, yardstick) as home:
        return evaluation.evaluate(
            config,
            home,
            params=params,
            step=step,
            write=False,
            max_crops=crops,
            seed=seed,
            by_voice=by_voice,
        )


def restore_on(workdir, yardstick="", average=True):
    """(config, params, step) of a run (`pretrained.restore`) with its held-out
    data (`YARDSTICK_FIELDS`) taken from `yardstick`'s config when given."""
    config, params, step = pretrained.restore(workdir, average)
    if yardstick:
        reference = pretrained.restore(yardstick)[0]
        for section, name in YARDSTICK_FIELDS:
            config[section][name] = reference[section].get(name)
    return config, params, step


@contextlib.contextmanager
def feature_home(workdir, yardstick=""):
    """The folder whose feature cache serves a run scored on `yardstick` (or on
    its own data): that workdir, or a temporary folder for a model folder or
    name, which keeps no cache."""
    home = yardstick or workdir
    if os.path.isdir(home) and not pretrained.is_model_dir(home):
        yield home
        return
    with tempfile.TemporaryDirectory(prefix="compare-") as cache:
        yield cache


def score_free_running(workdir, clips=4, clip_seconds=2.0, eval_dir="", sampling=None):
    """Only the free-running part of `score` (the NLL does not depend on how
    a model is sampled): `step`, `clips`, `clip_seconds` and the metrics."""
    config = _scoring_config(workdir, clips, clip_seconds, eval_dir, sampling)
    _, params, _, step = checkpointing.restore_params(workdir, config)
    utterances = input_pipeline.eval_utterances(config, workdir)
    return dict(step=step, **evaluation.free_running_scores(config, params, utterances))


def _scoring_config(workdir, clips, clip_seconds, eval_dir, sampling):
    config = checkpointing.load_config(workdir)
    _set_scoring(config, clips, clip_seconds, eval_dir, sampling)
    return config


def _set_scoring(config, clips, clip_seconds, eval_dir, sampling):
    config.train.eval_clips = clips
    config.train.eval_clip_seconds = clip_seconds
    if eval_dir:
        config.data.eval_dir = eval_dir
    for name, value in (sampling or {}).items():
        config.sampling[name] = value


def _fmt(value, digits):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def table(names, results, columns=COLUMNS):
    """A markdown table: one row per (name, result dict)."""
    head = "| run | " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|---" * (len(columns) + 1) + "|"
    rows = [
        f"| {name} | "
        + " | ".join(_fmt(result.get(key), d) for key, _, d in columns)
        + " |"
        for name, result in zip(names, results)
    ]
    return "\n".join([head, rule, *rows]) + "\n"


def voice_table(names, results):
    """A markdown table of each run's `by_voice` scores: a row per run and voice."""
    rows = [
        (f"{name}, {voice} ({scores['clips']} clips)", scores)
        for name, result in zip(names, results)
        for voice, scores in result.get("by_voice", {}).items()
    ]
    return table(*zip(*rows), columns=FREE_RUNNING_COLUMNS) if rows else ""


def define_flags():
    flags.DEFINE_list(
        "workdirs",
        None,
        "Training workdirs, exported model folders or packaged model names to score.",
    )
    flags.DEFINE_string(
        "yardstick",
        "",
        "Score every run on this run's held-out data (default: each its own).",
    )
    flags.DEFINE_integer("crops", 0, "NLL on this many eval crops (0 = every crop).")
    flags.DEFINE_bool(
        "average",
        True,
        "Score a workdir's moving average of the weights when it keeps one "
        "(train.ema_decay); --noaverage: the weights themselves.",
    )
    flags.DEFINE_bool(
        "by_voice",
        False,
        "Also the free-running metrics of each voice's clips (the manifest's "
        "speaker column, else each file's first folder under the corpus).",
    )
    flags.DEFINE_integer("clips", 4, "Free-running clips.")
    flags.DEFINE_float("clip_seconds", 2.0, "Seconds per clip.")
    flags.DEFINE_string("eval_dir", "", "Held-out folder (default: the dev split).")
    flags.DEFINE_float("temperature", None, "Sampling temperature override.")
    flags.DEFINE_float("coarse_temperature", None, "Coarse temperature override.")
    flags.DEFINE_float("prob_floor", None, "Probability floor override.")
    flags.DEFINE_float(
        "tail_mass",
        None,
        "Score the NLL with this uniform tail (model.tail_mass) instead of the "
        "model's own; sampling is unchanged (the tail is never drawn).",
    )
    flags.DEFINE_integer(
        "seed", 0, "Draws: clip n is sampled with fold_in(PRNGKey(seed), n)."
    )
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
        score(
            w,
            flag.clips,
            flag.clip_seconds,
            flag.eval_dir,
            sampling,
            yardstick=flag.yardstick,
            crops=flag.crops,
            average=flag.average,
            by_voice=flag.by_voice,
            tail_mass=flag.tail_mass,
            seed=flag.seed,
        )
        for w in flag.workdirs
    ]
    for result in results:
        print(json.dumps(result))
    print(table(flag.workdirs, results), end="")
    print(voice_table(flag.workdirs, results), end="")


if __name__ == "__main__":
    define_flags()
    app.run(main)
