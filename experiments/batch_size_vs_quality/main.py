"""The command line of the experiment: flags, then one call to `experiment.run`."""

from absl import app
from absl import flags

from experiments import common
from experiments.batch_size_vs_quality import experiment


def define_flags(flag_values=None):
    """Defines the flags (`common`: only when run) on `flag_values` (default:
    absl's global FLAGS). Flags left unset take the full or --quick default."""
    fv = flags.FLAGS if flag_values is None else flag_values
    common.define_training_flags(
        "batch_size_vs_quality",
        num_steps_quick=10,
        quick_help="Tiny models (configs/tiny.py sizes) and short clips: the whole "
        "pipeline in a few minutes.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "factors", None, "Subscale factors B. [1,2,4,8,16]", flag_values=fv
    )
    flags.DEFINE_list(
        "horizons",
        None,
        "Extra future horizons F at B = 16. [4,64]; quick [4]",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "future_horizon", 16, "F of every B > 1 in the B sweep.", flag_values=fv
    )
    flags.DEFINE_integer("lookback", 32, "W of every B > 1.", flag_values=fv)
    flags.DEFINE_integer(
        "clips", None, "Held-out clips scored. [6]; quick [2]", flag_values=fv
    )
    flags.DEFINE_float(
        "clip_seconds", None, "Seconds per clip. [2.0]; quick [1.0]", flag_values=fv
    )
    flags.DEFINE_string(
        "eval_dir",
        "",
        "Held-out audio folder (default: the dev split of the corpus).",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "fold_chunks",
        ["4", "16"],
        "N of the fold-and-crossfade baseline.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "overlap_ms",
        25.0,
        "Fold-and-crossfade overlap (whole frames).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "seam_ms",
        None,
        "Half-width of a seam window. [50]; quick [20]",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "repeats", None, "Timing rounds (median). [3]; quick [1]", flag_values=fv
    )
    flags.DEFINE_integer(
        "report_clips", 3, "Clips with players in report.html.", flag_values=fv
    )


def _ints(values):
    return None if values is None else tuple(int(v) for v in values)


def options_from_flags(fv):
    """Options from the flags; flags left unset take the full or quick default."""
    given = dict(
        workdir=fv.workdir,
        future_horizon=fv.future_horizon,
        lookback=fv.lookback,
        eval_dir=fv.eval_dir,
        fold_chunks=_ints(fv.fold_chunks),
        overlap_ms=fv.overlap_ms,
        report_clips=fv.report_clips,
        factors=_ints(fv.factors),
        horizons=_ints(fv.horizons),
        num_steps=fv.num_steps,
        clips=fv.clips,
        clip_seconds=fv.clip_seconds,
        seam_ms=fv.seam_ms,
        repeats=fv.repeats,
    )
    given = {k: v for k, v in given.items() if v is not None}
    if fv.quick:
        return experiment.quick_options(**given)
    return experiment.Options(**given)


def main(argv, flag_values=None):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS if flag_values is None else flag_values
    experiment.run(
        fv.base_config,
        options_from_flags(fv),
        command=common.command_line("batch_size_vs_quality"),
    )
