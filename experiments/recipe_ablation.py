r"""Recipe ablation: each training-recipe change alone, and combined, at one budget.

For B = 1 (`configs/demo.py`) and B = 16 (`configs/demo_subscale.py`), hidden
256, every row trains the same number of steps on the same samples per step
and is scored by `experiments.compare` on the same dev crops and clips: NLL
(and its parts) beside the free-running quality that decides (log-mel
distance, loudness correlation, quiet-frame excess, STOI, PESQ).

Rows (`ROWS`; a row that does not apply to a B is skipped):
- base: the recipe before this experiment.
- lp: a linear prediction of each sample from the mel, over the 16 nearest
  samples its context allows, enters the cell (`model.lp_order`).
- pre_emphasis: the model learns y[t] = x[t] - 0.85 x[t - 1] (`data.pre_emphasis`).
- crop_context: real samples around each crop as context (`data.crop_context`).
- neighbours: B > 1 rows s - 1, s - 2 at columns i, i + 1 enter the cell
  directly (`model.neighbour_rows`).
- fine_scale: the fine byte enters the inputs at 1/8 (`model.fine_input_scale`).
- input_noise: Gaussian noise of sigma 16..128 on the inputs in the second half
  of training (`train.input_noise`).
- long_crops: 4x longer crops, 4x fewer per step.
- carry_state: each batch slot walks through an utterance crop by crop, the
  rows' states (and, through the crop context, the context inputs) carried
  from crop to crop (`train.carry_state`): long-running states at the crop
  length of base.
- combined_prior: lp, pre_emphasis and crop_context (the best combination)
  with both softmaxes centred on the linear prediction (`model.lp_prior`).
- prior_no_pre_emphasis: combined_prior without pre-emphasis (de-emphasis
  tilts the model's noise towards the low frequencies).
- combined: the rows named by --combine, together.

The output-distribution rows (issue 19) start from combined_prior, the recipe
the demos shipped before it, and change one thing each:
- gaussian_prior: that recipe as it was: the density of a Gaussian at each
  class's value, no tail (`model.prior="gaussian"`, `model.tail_mass=0`).
- bin_mass: the logistic's probability mass of each class instead, no tail.
- tail: the Gaussian prior with the uniform tail (`model.tail_mass=2^-8`).
- bounded: bin masses and the tail together (what the demos ship now).
- mild_pre_emphasis: bounded with pre-emphasis 0.5 instead of 0.85 (less
  tilt of the model's noise towards low frequencies after de-emphasis).
Sampling-only rows reuse another row's model (`SAMPLING_ROWS`): `coarse_t0.7`
(coarse temperature 0.7) and `floor` (probability floor 0.002) on base;
`t0.6` (temperature 0.6 everywhere), and pitch-aware sampling
(`sampling.voiced_temperature`, `subscale/pitch.py`) on bounded: `voiced_t0.5`
and `voiced_t0.3` (temperature 1 in unvoiced frames, 0.5 or 0.3 in voiced
ones) and `t0.8_voiced_t0.4`.

Outputs under --workdir: `runs/<B>_<row>/` (training workdirs) and `cells/`
(each row's scores), both ignored by git, so that finished runs and scores are
reused and unfinished runs resumed; `results.jsonl`,
`results.md`, `ablation.png`.

Run (from the repository root; each row trains about 9 minutes on 2 CPU cores):
  python -m experiments.recipe_ablation
  python -m experiments.recipe_ablation --quick --workdir=/tmp/ablation_quick
  python -m experiments.recipe_ablation --report_only  # table from scored rows
  python -m experiments.recipe_ablation --factors=1 --rows=base,pre_emphasis \
      --combine=pre_emphasis,crop_context
  # The output-distribution rows on the four voices of ../shared/data:
  python -m experiments.recipe_ablation --train_dir=../shared/data/manifest.csv \
      --workdir=experiments/results/recipe_ablation_19 \
      --rows=gaussian_prior,bin_mass,tail,bounded,mild_pre_emphasis,t0.6,voiced_t0.5
"""

import dataclasses
import json
import os

from absl import app
from absl import flags
from absl import logging
from matplotlib import figure

from configs import demo
from configs import demo_subscale
from experiments import common
from experiments import compare
from subscale import config_validation

# The recipe the demos shipped before the output-distribution rows.
_PRIOR_RECIPE = {
    "model.lp_order": 16,
    "data.pre_emphasis": 0.85,
    "data.crop_context": True,
    "model.lp_prior": True,
}
_GAUSSIAN = {"model.prior": "gaussian", "model.tail_mass": 0.0}
_BOUNDED = {"model.prior": "logistic", "model.tail_mass": 2.0**-8}
# name: (subscale factors it applies to, {config field: value}); a value that
# is a function is called with the base config.
ROWS = {
    "base": ((1, 16), {}),
    "lp": ((1, 16), {"model.lp_order": 16}),
    "pre_emphasis": ((1, 16), {"data.pre_emphasis": 0.85}),
    "crop_context": ((1, 16), {"data.crop_context": True}),
    "neighbours": ((16,), {"model.neighbour_rows": 2}),
    "long_crops": (
        (1, 16),
        {
            "data.seq_len": lambda c: 4 * c.data.seq_len,
            "train.batch_size": lambda c: max(1, c.train.batch_size // 4),
        },
    ),
    "carry_state": ((1, 16), {"train.carry_state": True, "data.crop_context": True}),
    "fine_scale": ((1, 16), {"model.fine_input_scale": 0.125}),
    "combined_prior": (
        (1, 16),
        {
            "model.lp_order": 16,
            "data.pre_emphasis": 0.85,
            "data.crop_context": True,
            "model.lp_prior": True,
        },
    ),
    "prior_no_pre_emphasis": (
        (1, 16),
        {
            "model.lp_order": 16,
            "data.crop_context": True,
            "model.lp_prior": True,
        },
    ),
    "input_noise": (
        (1, 16),
        {
            "train.input_noise": (16.0, 128.0),
            "train.input_noise_start": lambda c: c.train.num_steps // 2,
        },
    ),
    "gaussian_prior": ((1, 16), {**_PRIOR_RECIPE, **_GAUSSIAN}),
    "bin_mass": ((1, 16), {**_PRIOR_RECIPE, **_GAUSSIAN, "model.prior": "logistic"}),
    "tail": ((1, 16), {**_PRIOR_RECIPE, **_GAUSSIAN, "model.tail_mass": 2.0**-8}),
    "bounded": ((1, 16), {**_PRIOR_RECIPE, **_BOUNDED}),
    "mild_pre_emphasis": (
        (1, 16),
        {**_PRIOR_RECIPE, **_BOUNDED, "data.pre_emphasis": 0.5},
    ),
}
# Rows that only change how another row's model is sampled:
# name: (the row whose model they sample, {field of config.sampling: value}).
SAMPLING_ROWS = {
    "coarse_t0.7": ("base", {"coarse_temperature": 0.7}),
    "floor": ("base", {"prob_floor": 0.002}),
    "t0.6": ("bounded", {"temperature": 0.6}),
    "voiced_t0.5": ("bounded", {"voiced_temperature": 0.5}),
    "voiced_t0.3": ("bounded", {"voiced_temperature": 0.3}),
    "t0.8_voiced_t0.4": ("bounded", {"temperature": 0.8, "voiced_temperature": 0.4}),
}


@dataclasses.dataclass(frozen=True)
class Options:
    factors: tuple = (1, 16)
    rows: tuple = tuple(ROWS) + tuple(SAMPLING_ROWS)
    combine: tuple = ()
    num_steps: int = 800
    clips: int = 4
    clip_seconds: float = 2.0
    workdir: str = "experiments/results/recipe_ablation"
    train_dir: str = ""  # "" = the demo configs' corpus
    quick: bool = False
    report_only: bool = False


def quick_options(**given):
    """Tiny models, a few steps, one short clip: the pipeline in a few minutes."""
    defaults = dict(
        factors=(4,),
        rows=("base", "floor"),
        combine=("lp", "neighbours", "crop_context"),
        num_steps=2,
        clips=1,
        clip_seconds=0.5,
    )
    return Options(**{**defaults, **given, "quick": True})


def base_config(factor, options):
    """The B = 1 or B > 1 demo config at the ablation's budget."""
    config = (demo if factor == 1 else demo_subscale).get_config()
    # "base" is the recipe before this experiment, whatever the demos adopt.
    config.model.lp_order = 0
    config.model.lp_prior = False
    config.data.pre_emphasis = 0.0
    config.data.crop_context = False
    if options.quick:
        model = config.model.to_dict()
        common.shrink_to_tiny(config)
        for name in ("subscale_factor", "future_horizon", "lookback"):
            config.model[name] = model[name]
        config.model.subscale_factor = factor
        config.data.seq_len = 400 * factor
    if options.train_dir:
        config.data.train_dir = options.train_dir
    config.data.cache_dir = os.path.join(options.workdir, "runs", "cache")
    config.train.num_steps = options.num_steps
    config.train.eval_every_steps = options.num_steps
    config.train.checkpoint_every_steps = max(1, min(200, options.num_steps))
    config.train.vocode_every_steps = 0
    config.train.eval_clips = options.clips
    config.train.eval_clip_seconds = options.clip_seconds
    return config


def _applies(row, factor):
    factors = ROWS[row][0]
    return factor in factors or (factor > 1 and 16 in factors)


def overrides_of(row, options, factor):
    """The config overrides of `row` at subscale factor `factor`; "combined"
    merges those of the --combine rows that apply at that factor."""
    if row == "combined":
        merged = {}
        for name in options.combine:
            if _applies(name, factor):
                merged.update(ROWS[name][1])
        return merged
    return ROWS[row][1]


def row_config(factor, row, options):
    config = base_config(factor, options)
    for field, value in overrides_of(row, options, factor).items():
        group, name = field.split(".")
        config[group][name] = value(config) if callable(value) else value
    config_validation.validate(config)
    return config


def plan(options):
    """[(factor, row)] to run, in order: each training row at every B, then the
    sampling rows."""
    rows = [r for r in options.rows if r in ROWS]
    if options.combine:
        rows.append("combined")
    out = []
    for row in rows:
        for factor in options.factors:
            if row == "combined" or _applies(row, factor):
                out.append((factor, row))
    for row in options.rows:
        if row in SAMPLING_ROWS:
            out.extend((factor, row) for factor in options.factors)
    return out


def run_row(factor, row, options):
    """Trains (or reuses) and scores one row; returns its record."""
    if row in SAMPLING_ROWS:
        model_row, sampling = SAMPLING_ROWS[row]
        workdir = os.path.join(options.workdir, "runs", f"B{factor}_{model_row}")
        config = row_config(factor, model_row, options)
        seconds = common.train_to_budget(f"B{factor}_{model_row}", config, workdir)
        overrides = {f"sampling.{k}": v for k, v in sampling.items()}
    else:
        workdir = os.path.join(options.workdir, "runs", f"B{factor}_{row}")
        config = row_config(factor, row, options)
        sampling = {}
        overrides = {
            k: (v(base_config(factor, options)) if callable(v) else v)
            for k, v in overrides_of(row, options, factor).items()
        }
        seconds = common.train_to_budget(f"B{factor}_{row}", config, workdir)
    cell = os.path.join(options.workdir, "cells", f"B{factor}_{row}.json")
    key = dict(
        step=common.latest_step(workdir, config),
        clips=options.clips,
        clip_seconds=options.clip_seconds,
        sampling=sampling,
    )
    stored = common.read_cell(cell, key)
    if stored is None:
        result = _score(workdir, factor, row, key, options)
        common.write_json(cell, dict(key=key, metrics=result))
    else:
        result = stored["metrics"]
    return dict(
        factor=factor,
        row=row,
        overrides={
            k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()
        },
        train_seconds=None if seconds is None else round(seconds, 1),
        **result,
    )


def _score(workdir, factor, row, key, options):
    """`compare.score` of a row. The NLL depends only on the model and its
    step, not on the clips or the sampling, so where the model's row was
    scored at this step before (a sampling row's model, or this row with
    other clips), that NLL is reused and only the free-running part computed;
    the NLL took 4 of the 5 minutes of scoring a row."""
    model_row = SAMPLING_ROWS[row][0] if row in SAMPLING_ROWS else row
    nll = _stored_nll(options, factor, model_row, key["step"])
    if nll is None:
        return compare.score(
            workdir, options.clips, options.clip_seconds, "", key["sampling"]
        )
    free = compare.score_free_running(
        workdir, options.clips, options.clip_seconds, "", key["sampling"]
    )
    return {**nll, **free}


def _stored_nll(options, factor, row, step):
    """The NLL part of training row `row`'s stored scores at `step`, or None."""
    path = os.path.join(options.workdir, "cells", f"B{factor}_{row}.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        stored = json.load(f)
    if stored["key"]["step"] != step or stored["key"]["sampling"]:
        return None
    return _nll_part(stored["metrics"])


def _nll_part(metrics):
    """A scored row's metrics less the free-running ones."""
    free = {name for name, _, _ in compare.FREE_RUNNING_COLUMNS}
    return {k: v for k, v in metrics.items() if k not in free}


def markdown(records, options, command):
    lines = [
        "# Recipe ablation",
        "",
        *common.provenance(command),
        f"- Budget: {options.num_steps} steps per row, hidden "
        "256 (`configs/demo.py`, `configs/demo_subscale.py`), the same samples "
        f"per step; NLL on every dev crop; free-running on {options.clips} dev "
        f"clips of {options.clip_seconds:g} s.",
        f"- Data: {options.train_dir or 'subscale:demo_data'} (dev split "
        "for the scores). Sampling rows reuse their model's NLL.",
        "",
    ]
    for factor in options.factors:
        group = [r for r in records if r["factor"] == factor]
        if not group:
            continue
        lines += [
            f"## B = {factor}",
            "",
            compare.table([r["row"] for r in group], group),
        ]
    return "\n".join(lines)


def plot(records, options, path):
    """One panel per free-running metric: a bar per row, a colour per B."""
    panels = (
        ("loudness_corr", "loudness correlation (higher is better)"),
        ("log_mel_db", "log-mel distance, dB (lower is better)"),
        ("stoi", "STOI (higher is better)"),
        ("eval_bits", "dev NLL, bits/sample (lower is better)"),
    )
    rows = list(dict.fromkeys(r["row"] for r in records))
    fig = figure.Figure(figsize=(11, 7))
    axes = fig.subplots(2, 2).ravel()
    width = 0.8 / max(1, len(options.factors))
    for ax, (key, title) in zip(axes, panels):
        for k, factor in enumerate(options.factors):
            by_row = {r["row"]: r.get(key) for r in records if r["factor"] == factor}
            xs = [
                j + k * width
                for j, row in enumerate(rows)
                if by_row.get(row) is not None
            ]
            ys = [by_row[row] for row in rows if by_row.get(row) is not None]
            ax.bar(xs, ys, width, label=f"B = {factor}")
        ax.set_xticks(
            [j + width * (len(options.factors) - 1) / 2 for j in range(len(rows))]
        )
        ax.set_xticklabels(rows, rotation=35, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    common.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))


def run(options, command=""):
    """Runs every planned row (resuming), writes and returns the records."""
    common.make_runs_folder(options.workdir)
    common.make_ignored_folder(options.workdir, "cells")
    records = []
    for factor, row in plan(options):
        cell = os.path.join(options.workdir, "cells", f"B{factor}_{row}.json")
        if options.report_only and not os.path.isfile(cell):
            logging.info("Row %s at B = %d: not scored yet, left out.", row, factor)
            continue
        logging.info("Row %s at B = %d.", row, factor)
        record = run_row(factor, row, options)
        records.append(record)
        common.write_text(
            os.path.join(options.workdir, "results.jsonl"),
            "".join(json.dumps(r) + "\n" for r in records),
        )
        common.write_text(
            os.path.join(options.workdir, "results.md"),
            markdown(records, options, command),
        )
    plot(records, options, os.path.join(options.workdir, "ablation.png"))
    return records


def define_flags():
    flags.DEFINE_list("factors", None, "Subscale factors. [1,16]; quick [1,4]")
    flags.DEFINE_list(
        "rows", None, f"Rows to run, of {list(ROWS) + list(SAMPLING_ROWS)}."
    )
    flags.DEFINE_list("combine", None, "Rows trained together as 'combined'.")
    flags.DEFINE_integer("num_steps", None, "Steps per row. [800]; quick [2]")
    flags.DEFINE_integer("clips", None, "Free-running dev clips. [4]; quick [1]")
    flags.DEFINE_float("clip_seconds", None, "Seconds per clip. [2]; quick [0.5]")
    flags.DEFINE_string("workdir", None, "Root folder of the runs and results.")
    flags.DEFINE_string(
        "train_dir",
        None,
        "Corpus every row trains on (and whose dev split scores it), e.g. "
        "../shared/data/manifest.csv. [the demo corpus]",
    )
    flags.DEFINE_bool("quick", False, "Tiny models and a few steps.")
    flags.DEFINE_bool(
        "report_only",
        False,
        "Rebuild the table and plot from the rows already scored; train nothing.",
    )


def options_from_flags():
    flag = flags.FLAGS
    given = {}
    if flag.factors:
        given["factors"] = tuple(int(b) for b in flag.factors)
    for name in ("rows", "combine"):
        if getattr(flag, name):
            given[name] = tuple(getattr(flag, name))
    for name in (
        "num_steps",
        "clips",
        "clip_seconds",
        "workdir",
        "train_dir",
        "report_only",
    ):
        if getattr(flag, name) is not None:
            given[name] = getattr(flag, name)
    for name in given.get("rows", ()) + given.get("combine", ()):
        if name not in ROWS and name not in SAMPLING_ROWS:
            raise app.UsageError(f"--rows/--combine: unknown row {name!r}")
    return quick_options(**given) if flag.quick else Options(**given)


def main(argv):
    del argv
    options = options_from_flags()
    command = common.command_line("recipe_ablation")
    for record in run(options, command):
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
