"""What the experiments that train models share: their runs and their files."""

import datetime
import os
import platform
import subprocess

import jax

from configs import tiny
from subscale import audio
from subscale import checkpointing


def write_text(path, text):
    """Writes a text file atomically (readers see the old or the new file)."""

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    audio.atomic_write(path, write)


def make_runs_folder(root):
    """Creates `root/runs` for the training workdirs, kept out of git (they hold
    checkpoints), as pytest keeps its cache."""
    runs = os.path.join(root, "runs")
    os.makedirs(runs, exist_ok=True)
    write_text(os.path.join(runs, ".gitignore"), "*\n")
    return runs


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


def provenance(command):
    """Markdown lines naming the command, date, commit and machine of a result."""
    device = jax.devices()[0]
    return [
        f"- Command: `{command}`",
        f"- Date: {datetime.date.today().isoformat()}. Commit: {git_commit()}.",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, JAX "
        f"{jax.__version__} on {device.platform} ({device.device_kind}).",
    ]
