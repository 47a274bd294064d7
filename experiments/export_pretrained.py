r"""Ships a trained workdir as a packaged model, with its learning curve and scores.

1. Exports the newest checkpoint of --workdir into `subscale/pretrained/NAME/`
   (`pretrained.export`: config.json, params.npz, info.json), so that
   `subscale.load(NAME)` and `--model=NAME` find it.
2. Writes the learning curve (dev NLL and the free-running metrics against
   steps, with the CPU time and wall time spent) from the workdir's
   metrics.jsonl to `experiments/results/NAME/learning_curve.{md,jsonl,png}`.
   A workdir that started from an exported model (`train.init_from`) continues
   that model's curve and adds to its cost (`earlier_pieces`).
3. Scores the exported model on the dev split of its corpus: NLL on every dev
   crop beside the forward-adaptive LPC reference on the same crops, and
   free-running quality on --clips dev clips beside Griffin-Lim on the same
   clips; writes `experiments/results/NAME/scores.{md,json}` and copies the
   figures into info.json. With --choice_clips (the dev clips that were
   looked at to choose settings), it first scores the headline: the same
   figures on every other dev prompt, each vocoded whole up to --clip_seconds.

Run (from the repository root, with `../shared` beside it):
  python -m experiments.export_pretrained --workdir=runs/speech16k --name=speech16k
  python -m experiments.export_pretrained --workdir=runs/speech16k_hold \
      --name=speech16k --choice_clips=4,48,4/46,8/46   # the second edition
  python -m experiments.export_pretrained --workdir=runs/speech16k --noexport \
      --noscore   # the learning curve alone, while training goes on
"""

import datetime
import json
import os
import tempfile

import numpy as np
from absl import app
from absl import flags
from matplotlib import figure

from experiments import common
from experiments import compare
from experiments import lpc_reference
from subscale import audio
from subscale import baselines
from subscale import checkpointing
from subscale import errors
from subscale import evaluation
from subscale import input_pipeline
from subscale import pretrained
from subscale import train

FLAGS = flags.FLAGS
RESULTS = "experiments/results"
# (metrics.jsonl key, column title, decimals) of the learning curve.
CURVE_COLUMNS = (
    ("dev_bits", "dev NLL", 3),
    ("dev_worst_bits", "worst sample", 1),
    ("dev_log_mel_db", "log-mel dB", 2),
    ("dev_bias_low_db", "low +dB", 1),
    ("dev_bias_mid_db", "mid +dB", 1),
    ("dev_bias_high_db", "high +dB", 1),
    ("dev_loudness_corr", "loudness r", 3),
    ("dev_quiet_excess_db", "quiet +dB", 1),
    ("dev_stoi", "STOI", 3),
    ("dev_pesq", "PESQ", 2),
)
# The release targets on the curve's own yardstick (issue 20): (metrics.jsonl
# key, what it is, "<=" or ">=", the target, or the reference it is taken from:
# "lpc" = the LPC reference NLL on the same crops minus 0.5 bits, "griffin_lim"
# = Griffin-Lim's score on the same clips).
TARGETS = (
    ("dev_bits", "NLL, 0.5 bits below LPC", "<=", "lpc"),
    ("dev_worst_bits", "worst sample", "<=", 24.0),
    ("dev_log_mel_db", "log-mel dB", "<=", 3.0),
    ("dev_loudness_corr", "loudness r", ">=", 0.98),
    ("dev_stoi", "STOI", ">=", 0.95),
    ("dev_pesq", "PESQ, Griffin-Lim's", ">=", "griffin_lim"),
)
# Points a trend line is fitted to, at least.
TREND_POINTS = 3
# The free-running figures copied into info.json.
_FREE = ("log_mel_db", "loudness_corr", "quiet_excess_db", "stoi", "pesq", "clips")


def define_flags():
    flags.DEFINE_string("workdir", None, "The training workdir to ship.")
    flags.DEFINE_string("name", "speech16k", "Name of the packaged model.")
    flags.DEFINE_bool("export", True, "Write the weights into the package.")
    flags.DEFINE_bool(
        "score",
        True,
        "Score the packaged model and Griffin-Lim; info.json keeps the scores "
        "when this run exported it (--export).",
    )
    flags.DEFINE_string(
        "scores", "scores", "Name of the scores files (.md, .json) in the results."
    )
    flags.DEFINE_integer("clips", 8, "Free-running dev clips.")
    flags.DEFINE_string(
        "curve",
        "learning_curve",
        "Name of the learning-curve files (.jsonl, .md, .png) in the results.",
    )
    flags.DEFINE_float("clip_seconds", 3.0, "Seconds per clip.")
    flags.DEFINE_list(
        "choice_clips",
        [],
        "The dev clips that were looked at to choose settings, as the clip "
        "counts that picked them: COUNT (`evaluation.clip_picks` over the whole "
        "dev list) or COUNT/FIRST (over its first FIRST prompts: an older, "
        "smaller dev list). The headline scores every other dev prompt.",
    )
    flags.DEFINE_bool(
        "trend",
        True,
        "Extrapolate the curve to the release targets (scores the LPC reference "
        "and Griffin-Lim on the periodic evaluation's crops and clips).",
    )
    flags.mark_flag_as_required("workdir")


def read_metrics(workdir):
    """The records of `workdir/metrics.jsonl`; a step logged twice (a run that
    resumed from an older checkpoint) keeps its newest record."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def cost(records, start_step=0):
    """{cpu_hours, wall_hours, runs, first, last} spent on the training lines
    of a run that began at `start_step`.

    CPU time: `cpu_seconds` counts from each run's start, so the total adds
    the last value of every run (a run ends where the counter drops). Lines
    written before the counter existed count their wall time (steps over
    steps per second) as CPU time of one core, an underestimate.
    Wall time: the sum of the logged intervals (training steps only).
    """
    cpu = wall = uncounted = 0.0
    previous_step, previous_cpu, runs = start_step, None, 0
    times = []
    for r in records:
        if "loss_bits" not in r:
            continue
        # A step below the last one: a run resumed from an earlier checkpoint.
        since = previous_step if r["step"] > previous_step else start_step
        steps = r["step"] - since
        interval = steps / r["steps_per_second"] if r["steps_per_second"] else 0.0
        wall += interval
        if "cpu_seconds" in r:
            if previous_cpu is None or r["cpu_seconds"] < previous_cpu:
                runs += 1
                if previous_cpu is not None:
                    cpu += previous_cpu
            previous_cpu = r["cpu_seconds"]
            times.append(r["time"])
        else:
            uncounted += interval
        previous_step = r["step"]
    cpu += (previous_cpu or 0.0) + uncounted
    return dict(
        cpu_hours=cpu / 3600,
        wall_hours=wall / 3600,
        runs_with_cpu_counter=runs,
        first=min(times, default=None),
        last=max(times, default=None),
    )


def curve(records, spent_before=0.0, start_step=0):
    """The evaluation records by step (the newest of a repeated step), each
    with the CPU hours spent up to it (plus `spent_before`)."""
    by_step = {}
    for n, r in enumerate(records):
        if "dev_bits" in r:
            hours = spent_before + cost(records[: n + 1], start_step)["cpu_hours"]
            by_step[r["step"]] = dict(r, cpu_hours=hours)
    return [by_step[s] for s in sorted(by_step)]


def earlier_pieces(workdir, curve_path):
    """(points, cost, start) of the training before a warm start.

    A workdir that started from an exported model (`train.init_from`) holds
    `warm_start.json`: the step it started at and that model's info.json,
    whose `training` is the cost of the pieces before. Their learning curve
    is the one written by the export of that model (`curve_path`), up to the
    start step. A workdir trained from scratch has none: ([], None, None).
    """
    path = os.path.join(workdir, train.WARM_START_FILE)
    if not os.path.isfile(path):
        return [], None, None
    with open(path) as f:
        record = json.load(f)
    start = int(record["step"])
    points = []
    if os.path.isfile(curve_path):
        with open(curve_path) as f:
            points = [json.loads(line) for line in f if line.strip()]
    points = [p for p in points if p["step"] <= start]
    before = record["info"].get("training", {})
    return points, before, dict(step=start, init_from=record["init_from"])


def add_costs(before, after):
    """The cost of two runs of training one after the other (`cost` dicts)."""
    if not before:
        return after
    times = [t for d in (before, after) for t in (d["first"], d["last"]) if t]
    return dict(
        cpu_hours=before["cpu_hours"] + after["cpu_hours"],
        wall_hours=before["wall_hours"] + after["wall_hours"],
        runs_with_cpu_counter=before["runs_with_cpu_counter"]
        + after["runs_with_cpu_counter"],
        first=min(times, default=None),
        last=max(times, default=None),
    )


def _date(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).date().isoformat()


def curve_markdown(points, spent, name, command):
    lines = [f"# {name}: learning curve", "", *common.provenance(command)]
    if spent["first"] is not None:
        lines.append(
            f"- Training dates: {_date(spent['first'])} to {_date(spent['last'])}."
        )
    lines += [
        f"- Spent: {spent['cpu_hours']:.2f} CPU-hours (process CPU time, all "
        f"threads), {spent['wall_hours']:.2f} hours of wall time in training "
        "steps.",
        "- The periodic evaluation during training: NLL on "
        "config.train.eval_crops dev crops (scores.md scores every dev crop), "
        "free-running metrics on the config.train.eval_clips dev clips it "
        "vocodes.",
        "",
        "| step | CPU-hours | " + " | ".join(t for _, t, _ in CURVE_COLUMNS) + " |",
        "|---" * (len(CURVE_COLUMNS) + 2) + "|",
    ]
    for p in points:
        cells = [compare._fmt(p.get(k), d) for k, _, d in CURVE_COLUMNS]
        lines.append(
            f"| {p['step']} | {p['cpu_hours']:.2f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def curve_plot(points, path, samples_per_step=None):
    """Dev NLL (mean and worst sample), log-mel distance with its per-band
    bias, STOI and PESQ, and loudness correlation against trained samples
    (or steps) and, on the top axis, CPU-hours."""
    fig = figure.Figure(figsize=(13, 3.4))
    axes = fig.subplots(1, 4)
    scale = samples_per_step or 1
    x = [p["step"] * scale / (1e6 if samples_per_step else 1) for p in points]
    label = "trained samples (millions)" if samples_per_step else "step"
    panels = (
        ("NLL (bits)", (("dev_bits", "mean"), ("dev_worst_bits", "worst / 4"))),
        (
            "log-mel (dB)",
            (
                ("dev_log_mel_db", "distance"),
                ("dev_bias_low_db", "bias, low third"),
                ("dev_bias_mid_db", "bias, mid third"),
                ("dev_bias_high_db", "bias, high third"),
            ),
        ),
        ("intelligibility", (("dev_stoi", "STOI"), ("dev_pesq", "PESQ / 4.5"))),
        ("loudness correlation", (("dev_loudness_corr", "r"),)),
    )
    divisors = {"dev_worst_bits": 4.0, "dev_pesq": 4.5}
    for ax, (title, series) in zip(axes, panels, strict=True):
        for key, name in series:
            values = [p.get(key, np.nan) / divisors.get(key, 1.0) for p in points]
            ax.plot(x, values, marker="o", label=name)
        ax.set_xlabel(label)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
        top = ax.secondary_xaxis("top")
        top.set_xticks(x[:: max(1, len(x) // 3)])
        top.set_xticklabels(
            [f"{p['cpu_hours']:.1f} h" for p in points][:: max(1, len(x) // 3)],
            fontsize=7,
        )
    fig.tight_layout()
    common.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))


def curve_references(config, workdir):
    """The references of the targets on the periodic evaluation's own data:
    {"lpc": the best LPC reference NLL on its `train.eval_crops` dev crops,
    "griffin_lim": Griffin-Lim's PESQ on its `train.eval_clips` clips}."""
    t = config.train
    lpc = lpc_reference.reference(
        config, [16, 32], ["laplace", "gaussian"], 320, workdir, t.eval_crops
    )
    utterances = input_pipeline.eval_utterances(config, workdir)
    gl = _griffin_lim(config, utterances, t.eval_clips, t.eval_clip_seconds)
    return dict(lpc=min(r["bits"] for r in lpc), griffin_lim=gl.get("pesq"))


def _griffin_lim(config, utterances, clip_count, clip_seconds):
    """Griffin-Lim's free-running scores on the clips `evaluation` vocodes."""
    mel_cfg = audio.MelConfig.from_config(config.data)
    clip_list = evaluation.clips(
        utterances,
        clip_count,
        clip_seconds,
        config.data.hop_length,
        config.data.sample_rate,
    )
    return evaluation.score_clips(
        clip_list,
        [baselines.griffin_lim(mel, mel_cfg) for _, _, mel in clip_list],
        mel_cfg,
        config.data.hop_length,
    )


def trend(points, samples_per_step, references):
    """Each target's straight-line trend against log2(trained samples).

    Fits value = a + b * log2(samples) to every point of the curve and solves
    for the budget at which the line reaches the target. A learning curve
    flattens as it goes, so the budget is a lower bound where the curve bends;
    the schedule's late learning-rate decay works the other way.

    Args:
      points: the curve (dicts with "step" and the metrics.jsonl keys).
      samples_per_step: trained samples per step.
      references: {"lpc": bits, "griffin_lim": PESQ} (`curve_references`).

    Returns:
      [{key, name, target, last, per_doubling, samples}]: `samples` is the
      budget that meets the target on the line, 0 when the last point meets
      it, and None when the line does not approach it.
    """
    rows = []
    for key, name, sense, target in TARGETS:
        if isinstance(target, str):
            target = references.get(target)
            if target is not None and key == "dev_bits":
                target -= 0.5
        have = [p for p in points if p.get(key) is not None]
        if target is None or len(have) < TREND_POINTS:
            continue
        x = np.log2([p["step"] * samples_per_step for p in have])
        y = np.array([p[key] for p in have], np.float64)
        slope, intercept = np.polyfit(x, y, 1)
        last = float(y[-1])
        better = -1.0 if sense == "<=" else 1.0
        # Four decimals: float32 puts a 24-bit cap at 24.000002.
        if better * (round(last, 4) - target) >= 0:
            samples = 0.0
        elif better * slope <= 0:
            samples = None
        else:
            samples = float(2.0 ** ((target - intercept) / slope))
        rows.append(
            dict(
                key=key,
                name=name,
                target=float(target),
                last=last,
                per_doubling=float(slope),
                samples=samples,
            )
        )
    return rows


def trend_markdown(rows, last_samples):
    """The `trend` table, budgets in trained samples and as multiples of the
    samples trained so far."""
    lines = [
        "",
        "## Where the trend leads",
        "",
        "A straight line through every point above against log2(trained "
        "samples), solved for each release target on the same crops and clips "
        "(the LPC reference and Griffin-Lim scored on them too). A curve "
        "flattens as it goes, so these budgets are optimistic where it bends; "
        "the schedule's late learning-rate decay works the other way.",
        "",
        "| target | now | change per doubling | target value | budget on the line |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["samples"] is None:
            budget = "not approached"
        elif r["samples"] == 0:
            budget = "met"
        else:
            budget = (
                f"{r['samples']:.2g} samples ({r['samples'] / last_samples:.2g}x "
                "so far)"
            )
        lines.append(
            f"| {r['name']} | {r['last']:.3f} | {r['per_doubling']:+.3f} | "
            f"{r['target']:.3f} | {budget} |"
        )
    return "\n".join(lines) + "\n"


def unchosen(utterances, choice_clips):
    """The utterances no choice of settings looked at: all but those that
    `evaluation.clip_picks` takes for each "COUNT" (over the whole list) or
    "COUNT/FIRST" (over its first FIRST utterances) of `choice_clips`."""
    used = set()
    for spec in choice_clips:
        count, _, first = spec.partition("/")
        try:
            count, first = int(count), int(first or len(utterances))
        except ValueError:
            count = first = -1
        if count < 1 or first < 1:
            raise errors.SubscaleError(
                f"--choice_clips: {spec!r} is not COUNT or COUNT/FIRST "
                "(positive whole numbers)"
            )
        used.update(evaluation.clip_picks(utterances[:first], count).tolist())
    return [u for i, u in enumerate(utterances) if i not in used]


def score(name, clip_count, clip_seconds, choice_clips=()):
    """The packaged model's dev scores beside the LPC reference and Griffin-Lim:
    on the whole dev split ("model", "griffin_lim", "lpc", "lpc_best"), and,
    with `choice_clips`, on the dev prompts no choice looked at ("headline":
    the same keys, and "prompts")."""
    config, params, info = pretrained.read(pretrained.path_of(name))
    with tempfile.TemporaryDirectory() as scratch:
        utterances = input_pipeline.eval_utterances(config, scratch)
        result = _scores(config, params, info, utterances, clip_count, clip_seconds)
        if choice_clips:
            held = unchosen(utterances, choice_clips)
            result["headline"] = dict(
                prompts=len(held),
                choice_clips=list(choice_clips),
                **_scores(config, params, info, held, len(held), clip_seconds),
            )
    return result


def _scores(config, params, info, utterances, clip_count, clip_seconds):
    """The model, LPC and Griffin-Lim scores on `utterances`: NLL on all their
    crops, free-running on `clip_count` of them."""
    config = config.copy_and_resolve_references()
    config.train.eval_clips = clip_count
    config.train.eval_clip_seconds = clip_seconds
    model = evaluation.evaluate(
        config,
        "",
        params=params,
        step=info.get("step"),
        write=False,
        utterances=utterances,
    )
    lpc = lpc_reference.reference(
        config, [16, 32], ["laplace", "gaussian"], 320, "", utterances=utterances
    )
    gl = _griffin_lim(config, utterances, clip_count, clip_seconds)
    best = min(lpc, key=lambda r: r["bits"])
    sampling = evaluation.shaping_kwargs(config.sampling)
    return dict(model=model, griffin_lim=gl, lpc=lpc, lpc_best=best, sampling=sampling)


def scores_markdown(scores, name, command):
    lines = [f"# {name}: scores on the dev split", "", *common.provenance(command)]
    if "headline" in scores:
        h = scores["headline"]
        lines += [
            "",
            f"## Headline: the {h['prompts']} dev prompts no choice looked at",
            "",
            "All dev prompts but the clips that were looked at to choose settings "
            f"(`--choice_clips={','.join(h['choice_clips'])}`: the clips "
            "`evaluation.clip_picks` takes for each count).",
            "",
            *_scores_table(h, name),
            "",
            "## The whole dev split",
        ]
    return "\n".join([*lines, "", *_scores_table(scores, name), ""])


def _scores_table(scores, name):
    m, best = scores["model"], scores["lpc_best"]
    lpc = f"LPC reference (order {best['order']}, {best['distribution']})"
    columns = (("eval_bits", "NLL (bits)", 3), *compare.FREE_RUNNING_COLUMNS)
    return [
        f"- Model step {m['step']}; NLL on {m['samples']} dev samples "
        f"({m['data']}; worst sample {m['worst_bits']:.1f} bits); free-running "
        f"on {m['clips']} clips of up to {m['clip_seconds']} s, sampled with "
        f"the model's `config.sampling` {json.dumps(scores.get('sampling', {}))}; "
        "Griffin-Lim (32 iterations) inverts the same clips' mels.",
        "",
        compare.table(
            [name, "Griffin-Lim", lpc],
            [m, scores["griffin_lim"], dict(eval_bits=best["bits"])],
            columns,
        ),
    ]


def _info_scores(scores):
    """The figures of `score` (or of its headline) that info.json keeps."""
    return dict(
        eval_bits=scores["model"]["eval_bits"],
        lpc_bits=scores["lpc_best"]["bits"],
        **{k: v for k, v in scores["model"].items() if k in _FREE},
        griffin_lim=scores["griffin_lim"],
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    command = common.command_line("export_pretrained")
    out = os.path.join(RESULTS, FLAGS.name)
    records = read_metrics(FLAGS.workdir)
    curve_path = os.path.join(out, FLAGS.curve + ".jsonl")
    points, before, warm_start = earlier_pieces(FLAGS.workdir, curve_path)
    start = warm_start["step"] if warm_start else 0
    spent = add_costs(before, cost(records, start))
    points += curve(records, (before or {}).get("cpu_hours", 0.0), start)
    common.write_jsonl(curve_path, points)
    text = curve_markdown(points, spent, FLAGS.name, command)
    if points:
        config = checkpointing.load_config(FLAGS.workdir)
        per_step = config.train.batch_size * config.data.seq_len
        curve_plot(points, os.path.join(out, FLAGS.curve + ".png"), per_step)
        if FLAGS.trend and len(points) >= TREND_POINTS:
            references = curve_references(config, FLAGS.workdir)
            rows = trend(points, per_step, references)
            text += trend_markdown(rows, points[-1]["step"] * per_step)
    common.write_text(os.path.join(out, FLAGS.curve + ".md"), text)
    dest = os.path.join(pretrained.PACKAGE_DIR, FLAGS.name)
    if FLAGS.export:
        info = pretrained.export(
            FLAGS.workdir,
            dest,
            info=dict(
                name=FLAGS.name,
                commit=common.git_commit(),
                training=common.clean(spent),
                **({"warm_start": warm_start} if warm_start else {}),
            ),
        )
        print(json.dumps(info))
    if FLAGS.score:
        scores = score(FLAGS.name, FLAGS.clips, FLAGS.clip_seconds, FLAGS.choice_clips)
        common.write_json(os.path.join(out, FLAGS.scores + ".json"), scores)
        common.write_text(
            os.path.join(out, FLAGS.scores + ".md"),
            scores_markdown(scores, FLAGS.name, command),
        )
        print(scores_markdown(scores, FLAGS.name, command))
    if FLAGS.score and FLAGS.export:
        with open(os.path.join(dest, pretrained.INFO_FILE)) as f:
            info = json.load(f)
        info["scores"] = common.clean(_info_scores(scores))
        if "headline" in scores:
            h = scores["headline"]
            info["scores"]["headline"] = common.clean(
                dict(prompts=h["prompts"], **_info_scores(h))
            )
        common.write_text(
            os.path.join(dest, pretrained.INFO_FILE), json.dumps(info, indent=2) + "\n"
        )


if __name__ == "__main__":
    define_flags()
    app.run(main)
