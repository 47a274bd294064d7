"""Resume bundles: what a new machine needs to continue a training run exactly.

A long training (`configs/speech16k.py`) is reached in pieces of a few hours,
each on whatever machine a session gets. Orbax checkpoints live in the
workdir, which does not outlive its machine; a bundle is the compact copy of
the newest checkpoint that is committed to the repository instead, replaced
at each piece:

- `state.npz`: every leaf of the train state by its path: the step, the
  parameters and pruning masks (float32, exact) and the Adam moments, exact
  (float32) or compact (bfloat16 bits, half the size, `moments`), and the
  moving average of the weights (`train.ema_decay`), exact or, when compact,
  as bfloat16 bits of its difference from the parameters (small, so the
  rounding is far below the average's own spread);
- `bundle.json`: the step, the moments' dtype, the run's config and the cost
  so far;
- `metrics.jsonl`: the run's metrics up to that step, so that the learning
  curve and the CPU-hours carry on across pieces.

`train.resume_from=BUNDLE` makes a run with no checkpoint yet start from the
bundle's state: the step, and with it the learning-rate schedule (a function
of the step) and the data order (drawn from the seed and the step), carry on,
and so do the Adam moments. With float32 moments the continued run equals the
unbroken one bit for bit (`tests/resume_test.py`).
"""

import json
import os
import shutil

import jax
import ml_collections
import numpy as np

from subscale import checkpointing
from subscale import errors
from subscale import files

STATE_FILE = "state.npz"
INFO_FILE = "bundle.json"
METRICS_FILE = "metrics.jsonl"
MOMENTS = ("float32", "bfloat16")


def _leaf_name(path):
    return jax.tree_util.keystr(path)


def _is_moment(name):
    """Whether a leaf is one of Adam's moments (`mu`, `nu` in the opt state)."""
    return name.startswith(".opt_state") and (".mu" in name or ".nu" in name)


def _params_leaf(name):
    """The parameter leaf whose moving average the leaf `name` is, or None."""
    return ".params" + name[len(".ema") :] if name.startswith(".ema") else None


def _to_bfloat16_bits(x):
    """float32 -> the upper 16 bits, rounded to nearest even (bfloat16)."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)


def _from_bfloat16_bits(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write(path, state, config, workdir=None, moments="bfloat16", cost=None):
    """Writes the bundle of `state` into folder `path` (replacing one there).

    Args:
      path: the bundle folder.
      state: a `train.TrainState` (on any device).
      config: the run's config.
      workdir: the run's workdir, whose `metrics.jsonl` up to the state's step
        goes into the bundle (None: none).
      moments: "float32" (exact) or "bfloat16" (half the size).
      cost: optional dict (for example CPU-hours so far) kept in bundle.json.
    """
    if moments not in MOMENTS:
        raise errors.SubscaleError(f"moments={moments!r}: must be one of {MOMENTS}")
    leaves, _ = jax.tree_util.tree_flatten_with_path(jax.device_get(state))
    exact = {_leaf_name(key): np.asarray(value) for key, value in leaves}
    arrays = {}
    for name, value in exact.items():
        if moments == "bfloat16" and _is_moment(name):
            value = _to_bfloat16_bits(value)
        elif moments == "bfloat16" and _params_leaf(name):
            value = _to_bfloat16_bits(value - exact[_params_leaf(name)])
        arrays[name] = value
    step = int(np.asarray(state.step))
    info = dict(
        step=step,
        moments=moments,
        config=config.to_dict(),
        cost=cost or {},
    )
    writes = {
        os.path.join(path, STATE_FILE): lambda tmp: np.savez_compressed(tmp, **arrays),
        os.path.join(path, INFO_FILE): files.text_writer(
            json.dumps(info, indent=1, default=list) + "\n"
        ),
    }
    if workdir is not None:
        lines = _metrics_until(os.path.join(workdir, METRICS_FILE), step)
        writes[os.path.join(path, METRICS_FILE)] = files.text_writer("".join(lines))
    files.atomic_write_all(writes)
    return info


def _metrics_until(path, step):
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [line for line in f if json.loads(line).get("step", 0) <= step]


def read_info(path):
    """bundle.json of the bundle in folder `path`; SubscaleError if absent."""
    info_path = os.path.join(path, INFO_FILE)
    try:
        with open(info_path) as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise errors.SubscaleError(
            f"train.resume_from={path}: no {INFO_FILE}: not a resume bundle "
            "(experiments/resume_bundle.py writes one)"
        ) from e
    except (OSError, ValueError) as e:
        raise errors.SubscaleError(f"{info_path}: unreadable ({e})") from e


def read(path, abstract_state):
    """The train state of the bundle in `path`, shaped like `abstract_state`.

    Raises:
      SubscaleError: naming the bundle file and the leaf that is missing or
        of another shape.
    """
    info = read_info(path)
    state_path = os.path.join(path, STATE_FILE)
    try:
        stored = np.load(state_path)
    except (OSError, ValueError) as e:
        raise errors.SubscaleError(f"{state_path}: unreadable ({e})") from e
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract_state)
    values = []
    compact = info.get("moments") == "bfloat16"
    with stored:
        for key, target in leaves:
            name = _leaf_name(key)
            params_leaf = _params_leaf(name)
            if params_leaf and name not in stored and params_leaf in stored:
                # A bundle of a run that kept no moving average: it starts here.
                value = stored[params_leaf]
            elif name not in stored:
                raise errors.SubscaleError(
                    f"{state_path}: no {name}: the bundle is of another model "
                    "or optimizer than the config's"
                )
            elif compact and _is_moment(name):
                value = _from_bfloat16_bits(stored[name])
            elif compact and params_leaf:
                value = stored[params_leaf] + _from_bfloat16_bits(stored[name])
            else:
                value = stored[name]
            if tuple(value.shape) != tuple(target.shape):
                raise errors.SubscaleError(
                    f"{state_path}: {name} has shape {value.shape}, the config's "
                    f"model needs {tuple(target.shape)}"
                )
            values.append(jax.device_put(value.astype(target.dtype), target.sharding))
    return jax.tree_util.tree_unflatten(treedef, values), int(info["step"])


def start(path, config, workdir, abstract_state):
    """The state a run with no checkpoint starts from with `train.resume_from`.

    Checks the bundle's config against `config` like a checkpoint's, and seeds
    the workdir's `metrics.jsonl` with the bundle's history when it has none.

    Returns:
      (state, step).
    """
    info = read_info(path)
    saved = ml_collections.ConfigDict(info["config"])
    checkpointing.check_compatible(saved, config, path)
    state, step = read(path, abstract_state)
    history = os.path.join(path, METRICS_FILE)
    metrics = os.path.join(workdir, METRICS_FILE)
    if os.path.isfile(history) and not os.path.exists(metrics):
        shutil.copyfile(history, metrics)
    return state, step
