"""What the experiments share: how they run, their flags, their runs and files.

Every experiment runs from the repository root as `python -m experiments.NAME`
and defines its flags in its `define_flags()`, which runs only when the
experiment does, so that tests and notebooks can import several experiments
into one process. The experiments that train models share four flags with one
meaning (`define_training_flags`):

- `--base_config`: the config every model starts from;
- `--workdir`: the training runs go under `runs/` (kept out of git), the
  resume cache under `cells/` (idem), the results beside them;
- `--quick`: tiny models (configs/tiny.py sizes), the whole pipeline in minutes;
- `--num_steps`: training steps per model, instead of the base config's.
"""

import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time

import jax
import numpy as np
from absl import flags
from absl import logging
from ml_collections import config_flags

from configs import tiny
from subscale import checkpointing
from subscale import files
from subscale import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define_training_flags(name, *, num_steps_quick, quick_help, flag_values=None):
    """Defines --base_config, --workdir, --num_steps and --quick.

    Args:
      name: the experiment's module name; its results go to
        `experiments/results/<name>` by default.
      num_steps_quick: the training steps of a --quick run (for the help).
      quick_help: what --quick runs, for the help.
      flag_values: where to define them (default: absl's global FLAGS).
    """
    fv = flags.FLAGS if flag_values is None else flag_values
    config_flags.DEFINE_config_file(
        "base_config",
        os.path.join(REPO, "configs", "demo.py"),
        "Config every model starts from (hidden size, data, optimiser, budget).",
        flag_values=fv,
        lock_config=True,
    )
    flags.DEFINE_string(
        "workdir",
        f"experiments/results/{name}",
        "Root folder for the training runs and the results.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "num_steps",
        None,
        f"Training steps per model. [base config's]; quick [{num_steps_quick}]",
        flag_values=fv,
    )
    flags.DEFINE_bool("quick", False, quick_help, flag_values=fv)


def define_config_flag(help_string, flag_values=None):
    """Defines the required --config of the experiments that use one config."""
    fv = flags.FLAGS if flag_values is None else flag_values
    config_flags.DEFINE_config_file(
        "config", None, help_string, flag_values=fv, lock_config=True
    )
    flags.mark_flag_as_required("config", flag_values=fv)


def command_line(name, argv=None):
    """The command that repeats this run, for the results' provenance."""
    argv = sys.argv[1:] if argv is None else argv
    return " ".join([f"python -m experiments.{name}", *argv])


write_text = files.write_text
atomic_write = files.atomic_write


def write_jsonl(path, records):
    """Writes one JSON line per record, atomically."""
    write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def clean(value):
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path, record):
    """Writes `record` (made JSON-safe) as an indented JSON file, atomically."""
    write_text(path, json.dumps(clean(record), indent=1) + "\n")


def read_cell(path, key):
    """The stored cell at `path` if it was made for `key`, else None."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            cell = json.load(f)
    except (OSError, ValueError):
        return None
    return cell if cell.get("key") == clean(key) else None


def make_ignored_folder(root, name):
    """Creates `root/name`, kept out of git by its own .gitignore (as pytest
    keeps its cache), so that a workdir inside the repository commits only its
    results."""
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    ignore = os.path.join(folder, ".gitignore")
    if not os.path.exists(ignore):
        write_text(ignore, "*\n")
    return folder


def make_runs_folder(root):
    """Creates `root/runs` for the training workdirs (they hold checkpoints)."""
    return make_ignored_folder(root, "runs")


def latest_step(workdir, config):
    """Step of the newest checkpoint in `workdir`, or None.

    Raises SubscaleError when the run there was made with another config.
    """
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        return None
    checkpointing.check_compatible(checkpointing.load_config(workdir), config, workdir)
    mngr = checkpointing.manager(workdir, config, read_only=True)
    try:
        return mngr.latest_step()
    finally:
        mngr.close()


def shrink_to_tiny(config):
    """`config` with the model, training and crop sizes of configs/tiny.py (the
    experiments' --quick mode); data and evaluation fields stay."""
    small = tiny.get_config()
    for group in ("model", "train"):
        for name, value in small[group].items():
            config[group][name] = value
    config.data.seq_len = small.data.seq_len
    config.data.eval_seq_len = small.data.eval_seq_len
    return config


def base_config(config, workdir, *, quick=False, num_steps=None):
    """A copy of `config` for an experiment's models.

    Args:
      config: the --base_config.
      workdir: the experiment's --workdir.
      quick: shrink the models to configs/tiny.py sizes.
      num_steps: training steps, instead of the config's (None: keep them).

    Returns:
      The resolved copy; features are cached under `workdir/runs/cache` unless
      the config names a cache.
    """
    config = config.copy_and_resolve_references()
    if quick:
        shrink_to_tiny(config)
    if num_steps is not None:
        config.train.num_steps = num_steps
    if not config.data.cache_dir:
        config.data.cache_dir = os.path.join(workdir, "runs", "cache")
    return config


def train_to_budget(name, config, workdir):
    """Trains the run in `workdir` up to config.train.num_steps.

    A finished run is reused and an unfinished one resumed.

    Returns:
      The seconds spent training, or None when the run was already finished.
    """
    steps = config.train.num_steps
    done = latest_step(workdir, config)
    if done is not None and done >= steps:
        logging.info("%s: reusing %s (step %d).", name, workdir, done)
        return None
    logging.info("%s: training to step %d in %s.", name, steps, workdir)
    start = time.perf_counter()
    result = train.train_and_evaluate(config, workdir)
    seconds = time.perf_counter() - start
    logging.info(
        "%s: trained in %.0f s, dev %.4f bits.",
        name,
        seconds,
        result.get("dev_bits", math.nan),
    )
    return seconds


def git_commit():
    """The short hash of the checkout's HEAD, or "unknown"."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model():
    """The CPU's model name (speed differs by CPU model, not only by core count)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(command):
    """Markdown lines naming the command, date, commit and machine of a result."""
    device = jax.devices()[0]
    return [
        f"- Command: `{command}`",
        f"- Date: {datetime.date.today().isoformat()}. Commit: {git_commit()}.",
        f"- Machine: {cpu_model()}, {os.cpu_count()} CPU cores, JAX "
        f"{jax.__version__} on {device.platform} ({device.device_kind}).",
    ]
