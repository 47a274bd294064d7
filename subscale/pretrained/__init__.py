"""Trained models shipped inside the package, and the exported-model format.

A model folder holds three files:
- `config.json`: the training config (the same file a workdir holds);
- `params.npz`: the parameters, one array per path ("cell/R/kernel", ...);
  pruned weights are exact zeros, so a sparse model needs no masks;
- `info.json`: where the weights came from (step, data, dates, commit) and
  the model's measured scores.

This is deliberately not an orbax checkpoint: three small files that numpy
reads, without optimizer state, that any version of the code loads by name
and shape. `subscale.load(NAME)` and `--model=NAME` read the folders under
this package (`names()`); `export` writes one from a training workdir
(`experiments/export_pretrained.py`). The model card is `README.md` here.
"""

import json
import os

import numpy as np
from flax import traverse_util

from subscale import checkpointing
from subscale import errors
from subscale import files

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
CONFIG_FILE = checkpointing.CONFIG_FILE
PARAMS_FILE = "params.npz"
INFO_FILE = "info.json"
_SEP = "/"


def is_model_dir(path):
    """Whether `path` is an exported model folder (config + params)."""
    return os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isfile(
        os.path.join(path, PARAMS_FILE)
    )


def names():
    """The names of the models shipped in the package, sorted."""
    return sorted(
        n for n in os.listdir(PACKAGE_DIR) if is_model_dir(os.path.join(PACKAGE_DIR, n))
    )


def path_of(name):
    """The folder of the packaged model `name`.

    Raises:
      SubscaleError: one line naming `name` and the models that exist.
    """
    if name in names():
        return os.path.join(PACKAGE_DIR, name)
    known = ", ".join(names()) or "none"
    raise errors.SubscaleError(
        f"{name}: neither a workdir nor a pretrained model (pretrained models: {known})"
    )


def locate(model):
    """The folder of `model`: an exported model folder, or a packaged name
    (`path_of`, which raises naming the packaged models)."""
    return model if is_model_dir(model) else path_of(model)


def restore(path, average=True):
    """(config, params, step) of a training workdir (its newest checkpoint), an
    exported model folder or a packaged model's name.

    A workdir gives the moving average of its weights when it keeps one
    (`train.ema_decay`), or with `average` False the weights themselves.

    Raises:
      SubscaleError: `path` is none of these (the message lists the packaged
        models), or what it holds does not load.
    """
    path = str(path)
    if os.path.isdir(path) and not is_model_dir(path):
        config, params, _, step = checkpointing.restore_params(path, average=average)
        return config, params, step
    config, params, info = read(locate(path))
    return config, params, info.get("step")


def read(path):
    """(config, params, info) of the exported model in `path`.

    The arrays must match, path for path and shape for shape, the parameters
    of the model that `config.json` describes.

    Raises:
      SubscaleError: a missing or unreadable file, or arrays that do not fit
        the config; the message names the file.
    """
    config = checkpointing.load_config(path)
    params_path = os.path.join(path, PARAMS_FILE)
    try:
        with np.load(params_path) as stored:
            arrays = {k: stored[k] for k in stored.files}
    except (OSError, ValueError) as e:
        raise errors.SubscaleError(f"{params_path}: unreadable ({e})") from e
    shapes, _ = checkpointing.param_shapes(config)
    expected = traverse_util.flatten_dict(shapes, sep=_SEP)
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise errors.SubscaleError(
            f"{params_path}: does not fit {CONFIG_FILE} (missing {missing[:3]}, "
            f"unexpected {extra[:3]})"
        )
    flat = {}
    for key, want in expected.items():
        have = arrays[key]
        if have.shape != want.shape:
            raise errors.SubscaleError(
                f"{params_path}: {key} has shape {have.shape}, the config "
                f"needs {want.shape}"
            )
        flat[key] = have.astype(want.dtype)
    params = traverse_util.unflatten_dict(flat, sep=_SEP)
    info = {}
    info_path = os.path.join(path, INFO_FILE)
    if os.path.isfile(info_path):
        with open(info_path) as f:
            info = json.load(f)
    return config, params, info


def export(workdir, dest, info=None):
    """Writes the newest checkpoint of `workdir` as a model folder `dest`.

    Args:
      workdir: a training workdir.
      dest: the folder to write (created; its three files replaced together,
        or not at all).
      info: extra fields for `info.json` (the step is added).

    Returns:
      The info written.
    """
    config, params, _, step = checkpointing.restore_params(workdir)
    config.data.cache_dir = ""  # a machine path: not part of the model
    # A resume bundle only carries a run on to the same state an unbroken run
    # reaches, so the model's config is the run from scratch.
    config.train.resume_from = ""
    flat = {
        k: np.asarray(v)
        for k, v in traverse_util.flatten_dict(params, sep=_SEP).items()
    }

    def write_params(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **flat)

    info = dict(info or {}, step=int(step))
    # All three or none: a failed export leaves the folder's model as it was.
    files.atomic_write_all(
        {
            os.path.join(dest, PARAMS_FILE): write_params,
            os.path.join(dest, CONFIG_FILE): files.text_writer(
                checkpointing.config_text(config)
            ),
            os.path.join(dest, INFO_FILE): files.text_writer(
                json.dumps(info, indent=2) + "\n"
            ),
        }
    )
    return info
