"""The whole experiment: what to run (`Options`) and running it (`run`)."""

import dataclasses
import os

from absl import logging

from experiments import common
from experiments.batch_size_vs_quality import measuring
from experiments.batch_size_vs_quality import report
from experiments.batch_size_vs_quality import scoring
from experiments.batch_size_vs_quality import systems as systems_lib
from subscale import metrics


@dataclasses.dataclass(frozen=True)
class Options:
    """What to run. The defaults are the full experiment; `quick_options` gives
    those of --quick."""

    workdir: str
    factors: tuple = (1, 2, 4, 8, 16)
    horizons: tuple = (4, 64)
    future_horizon: int = 16
    lookback: int = 32
    num_steps: int | None = None  # None: the base config's
    clips: int = 6
    clip_seconds: float = 2.0
    eval_dir: str = ""
    fold_chunks: tuple = (4, 16)
    overlap_ms: float = 25.0
    seam_ms: float = 50.0
    repeats: int = 3
    report_clips: int = 3
    quick: bool = False


QUICK = dict(
    horizons=(4,),
    num_steps=10,
    clips=2,
    clip_seconds=1.0,
    seam_ms=20.0,
    repeats=1,
)


def quick_options(**given):
    """Options of a --quick run; `given` overrides any field."""
    return Options(**{**QUICK, "quick": True, **given})


def run(base_config, options, command=""):
    """The whole experiment; returns the summary records (one per system)."""
    logging.info("Optional metrics available: %s.", metrics.available())
    for name, ok in metrics.available().items():
        if not ok:
            logging.warning(
                "%s is not installed: its metric is skipped "
                "(pip install -e '.[experiments]').",
                name,
            )
    base = systems_lib.base_for(base_config, options)
    systems = systems_lib.make_systems(base, options)
    logging.info("Systems: %s.", ", ".join(s.name for s in systems))
    systems_lib.train_models(systems, options)
    clips = scoring.load_clips(base, options)
    logging.info("Clips: %s.", ", ".join(c.name for c in clips))
    runner = measuring.Runner(base, options, systems, clips)
    nll = runner.nll()
    cells = runner.measure()
    runner.examples()
    speed = runner.speed()
    records = report.summarize(runner, cells, nll, speed, options)
    root = options.workdir
    common.write_jsonl(os.path.join(root, "results.jsonl"), records)
    table = report.markdown(records, options, command)
    common.write_text(os.path.join(root, "results.md"), table)
    report.plot_quality(
        records, os.path.join(root, "quality_vs_B.png"), options.future_horizon
    )
    report.plot_speed(records, os.path.join(root, "speed_vs_B.png"), runner.rate)
    report.plot_seams(records, os.path.join(root, "seams.png"), options.fold_chunks)
    common.write_text(
        os.path.join(root, "report.html"),
        report.report_html(records, runner.report_clips()),
    )
    print(table, flush=True)
    return records
