"""Orbax checkpoints of the train state, with the config beside them.

A workdir holds `checkpoints/<step>/` (orbax: the state and the config as JSON)
and `config.json` (the newest config, written atomically). Orbax writes each
checkpoint into a temporary folder and renames it when complete, so a run
killed during a save leaves the previous checkpoints intact and the half-written
one is never listed by `latest_step()`.
"""

import json
import os
import re

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from subscale import errors
from subscale import files
from subscale import models
from subscale import sparsity

CONFIG_FILE = "config.json"
# Where training moves checkpoints that did not restore (`set_aside`).
DAMAGED_DIR = "damaged_checkpoints"
# Model fields that fix the parameter shapes: a checkpoint restores only into a
# config that agrees on all of them.
SHAPE_FIELDS = (
    "model.hidden_size",
    "model.cond_channels",
    "model.subscale_factor",
    "model.future_horizon",
    "model.lookback",
    "model.context_summary",
    "model.context_channels",
    "model.lp_order",
    "model.lp_prior",
    "model.neighbour_rows",
    "data.n_mels",
)
# Feature fields: other values leave the shapes alone but feed the model audio
# and mels unlike those it was trained on, or read its outputs as another
# distribution.
FEATURE_FIELDS = (
    "model.fine_input_scale",
    "model.prior",
    "data.pre_emphasis",
    "data.sample_rate",
    "data.hop_length",
    "data.n_fft",
    "data.win_length",
    "data.fmin",
    "data.fmax",
)


# Fields added since the first checkpoints were written, with the value that
# reproduces the older behaviour: a saved config without them gets them here.
ADDED_FIELDS = {
    "data.pre_emphasis": 0.0,
    "data.crop_context": False,
    "data.resample": True,
    "data.skip_bad_files": False,
    "model.neighbour_rows": 0,
    "model.fine_input_scale": 1.0,
    "model.lp_order": 0,
    "model.lp_prior": False,
    "model.prior": "gaussian",
    "model.tail_mass": 0.0,
    "train.input_noise": (0.0, 0.0),
    "train.input_noise_start": 0,
    "train.carry_state": False,
    "train.ema_decay": 0.0,
    "train.tail_mass": None,
    "train.weight_decay": 0.0,
    "train.cooldown_steps": 0,
    "train.init_from": "",
    "train.resume_from": "",
    "train.tensorboard": False,
    "train.eval_clips": 0,
    "train.eval_clip_seconds": 2.0,
    "sampling.coarse_temperature": 0.0,
    "sampling.prob_floor": 0.0,
    "sampling.voiced_temperature": 0.0,
}


def manager(workdir, config, *, read_only=False):
    """An orbax CheckpointManager for `workdir/checkpoints`."""
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=int(config.train.checkpoint_every_steps),
        max_to_keep=int(config.train.keep_checkpoints),
        create=not read_only,
        read_only=read_only,
    )
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    try:
        return ocp.CheckpointManager(directory, options=options)
    except OSError as e:
        raise errors.SubscaleError(
            f"{workdir}: cannot use as workdir ({e.strerror or e})"
        ) from e


def save(mngr, step, state, config, *, force=False):
    """Saves `state` at `step` (if due, or `force`); returns whether it saved.

    The save finishes in the background; `close` waits for it.

    Raises:
      SubscaleError: naming the checkpoint folder, when this save or the one
        before it could not be written (a full disk); the checkpoints already
        complete stay intact.
    """
    try:
        return mngr.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeSave(state),
                config=ocp.args.JsonSave(config.to_dict()),
            ),
            force=force,
        )
    except (OSError, ValueError) as e:
        raise _unwritable(mngr, e) from e


def close(mngr):
    """Waits for the save in flight to complete, then closes `mngr`.

    Raises:
      SubscaleError: as `save`.
    """
    try:
        mngr.close()
    except (OSError, ValueError) as e:
        raise _unwritable(mngr, e) from e


def _unwritable(mngr, error):
    if isinstance(error, errors.SubscaleError):
        return error
    # Orbax renames a checkpoint's folder to its step only once it is complete.
    complete = [int(name) for name in os.listdir(mngr.directory) if name.isdigit()]
    kept = (
        f"the newest complete one, step {max(complete)}, is intact and a new run "
        "resumes from it"
        if complete
        else "there is no complete checkpoint yet"
    )
    return errors.SubscaleError(
        f"{mngr.directory}: cannot write a checkpoint ({_write_failure(error)}); "
        f"{kept} once the disk has space again"
    )


def _write_failure(error):
    """What failed where, from an OSError or TensorStore's long message."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename or '?'}"
    text = str(error)
    code = re.search(r"os_error_code='?(\d+)", text)
    path = re.search(r'"(/[^"]+)"', text)
    if code and path:
        return f"{os.strerror(int(code.group(1)))}: {path.group(1)}"
    return f"{type(error).__name__}: {_one_line(error, 300)}"


def write_config(workdir, config):
    """Writes `workdir/config.json` atomically."""
    files.write_text(os.path.join(workdir, CONFIG_FILE), config_text(config))


def config_text(config):
    """The JSON text of `config` that `write_config` writes."""
    return json.dumps(config.to_dict(), indent=2, default=list)


def load_config(workdir):
    """The config saved in `workdir` (a ConfigDict)."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise errors.SubscaleError(
            f"{workdir}: no {CONFIG_FILE}: not a subscale workdir, or not trained yet"
        )
    try:
        with open(path) as f:
            config = ml_collections.ConfigDict(json.load(f))
    except (OSError, ValueError) as e:
        raise errors.SubscaleError(f"{path}: unreadable config ({e})") from e
    for field, value in ADDED_FIELDS.items():
        group, name = field.split(".")
        if group in config and name not in config[group]:
            config[group][name] = value
    return config


# Fields that matter only while another is on: the prior's shape without
# the prior changes nothing.
_ONLY_WITH = {"model.prior": ("model", "lp_prior")}


def check_compatible(saved, config, workdir):
    """Raises if the checkpoint's config fixes other shapes or features."""
    for field in SHAPE_FIELDS + FEATURE_FIELDS:
        group, name = field.split(".")
        old = saved[group].get(name) if group in saved else None
        new = config[group][name]
        switch = _ONLY_WITH.get(field)
        if switch and not config[switch[0]][switch[1]]:
            continue
        if old is not None and old != new:
            raise errors.SubscaleError(
                f"{workdir}: checkpoint has {field}={old} but the config says "
                f"{new}; use another --workdir or the checkpoint's config"
            )


def restore(mngr, abstract_state, step=None):
    """Restores the state at `step` (default: latest) into `abstract_state`.

    Only the fields of `abstract_state` are read, so a checkpoint restores
    when it holds more: the parameters alone for inference, or a state written
    while `TrainState` still had fields it has since lost.

    Without `step`, a newest checkpoint that does not restore (cut short,
    corrupted) gives way to the one before it, with a warning naming both.

    Args:
      mngr: from `manager`.
      abstract_state: pytree of jax.ShapeDtypeStruct (with shardings): the
        whole train state, or a dict of some of its top-level fields.
      step: which checkpoint; None for the newest one that restores.

    Returns:
      (state, step), or (None, None) when there is no checkpoint.

    Raises:
      SubscaleError: `step` does not restore, or (without `step`) there are
        checkpoints and none of them restores.
    """
    if step is not None:
        return _restore_step(mngr, abstract_state, step), step
    failures = []
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            state = _restore_step(mngr, abstract_state, step)
        except errors.SubscaleError as e:
            failures.append(str(e))
            continue
        if failures:
            logging.warning(
                "%s; restored the one before it instead: %s.",
                "; ".join(failures),
                mngr.directory / str(step),
            )
        return state, step
    if failures:
        raise errors.SubscaleError(
            f"{mngr.directory.parent}: none of its {len(failures)} checkpoints "
            f"restores, so the run cannot resume (newest: {failures[0]}); move "
            f"{mngr.directory} away to start afresh"
        )
    return None, None


def _restore_step(mngr, abstract_state, step):
    try:
        return _restore_tree(mngr, abstract_state, step)
    except errors.SubscaleError:
        plain = _without_ema(abstract_state)
        if plain is None:
            raise
        # Written before the run kept a moving average (`train.ema_decay`):
        # it starts here, at the parameters.
        try:
            restored = _restore_tree(mngr, plain, step)
        except errors.SubscaleError:
            pass
        else:
            logging.info(
                "%s: no moving average of the weights in it: it starts there.",
                mngr.directory / str(step),
            )
            return with_ema(restored, _field(restored, "params"))
        raise


def _restore_tree(mngr, abstract_state, step):
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract_state)
    try:
        restored = mngr.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    abstract_state, restore_args=restore_args, partial_restore=True
                )
            ),
        ).state
    except Exception as e:  # noqa: BLE001 - TensorStore raises plain Exception too
        # Orbax lists only checkpoints whose save completed, so this one was
        # damaged since, or holds another model; orbax's message spans lines.
        raise _unrestorable(mngr, step, f"{type(e).__name__}: {_one_line(e)}") from e
    # A partial restore hands back the requested fields the checkpoint lacks
    # as they were requested, abstract.
    missing = [
        jax.tree_util.keystr(path)
        for path, leaf in jax.tree_util.tree_leaves_with_path(restored)
        if isinstance(leaf, jax.ShapeDtypeStruct)
    ]
    if missing:
        raise _unrestorable(mngr, step, f"it lacks {', '.join(missing[:3])}")
    return restored


def _without_ema(abstract_state):
    """`abstract_state` without its moving average, or None if it has none."""
    if isinstance(abstract_state, dict):
        if not abstract_state.get("ema"):
            return None
        return {k: v for k, v in abstract_state.items() if k != "ema"}
    if not getattr(abstract_state, "ema", None):
        return None
    return abstract_state.replace(ema={})


def _field(state, name):
    return state[name] if isinstance(state, dict) else getattr(state, name)


def with_ema(state, params):
    """`state` (a train state or a dict of its fields) with its moving average
    set to a copy of `params`: a run that starts keeping one."""
    ema = jax.tree_util.tree_map(jnp.copy, params)
    if isinstance(state, dict):
        return dict(state, ema=ema)
    return state.replace(ema=ema)


def _one_line(error, limit=200):
    return " ".join(str(error).split())[:limit]


def _unrestorable(mngr, step, reason):
    return errors.SubscaleError(
        f"{mngr.directory / str(step)}: cannot restore this checkpoint, "
        f"damaged or of another config ({reason})"
    )


def set_aside(mngr, workdir, after):
    """Moves the checkpoints newer than step `after` (ones that did not
    restore) to `workdir/damaged_checkpoints/`, out of the resumed run's way:
    it saves those steps again. Returns the folders they went to."""
    moved = []
    for step in mngr.all_steps():
        if step <= after:
            continue
        source = mngr.directory / str(step)
        dest = os.path.join(workdir, DAMAGED_DIR, str(step))
        while os.path.exists(dest):
            dest += "+"
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if jax.process_index() == 0:
            os.replace(source, dest)
            logging.warning("Moved the damaged checkpoint %s to %s.", source, dest)
        moved.append(dest)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("checkpointing.set_aside")
    mngr.reload()
    return moved


def abstract(tree, sharding):
    """ShapeDtypeStructs of `tree` (arrays or structs) placed with `sharding`."""
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree
    )


def param_shapes(config):
    """(params, masks) of `config`'s model as ShapeDtypeStructs (no compute)."""
    model_cfg = models.ModelConfig.from_config(config)
    return jax.eval_shape(
        lambda key: sparsity.init_params(
            model_cfg, sparsity.SparsityConfig.from_config(config), key
        ),
        jax.random.PRNGKey(0),
    )


def restore_params(workdir, config=None, average=True):
    """The parameters of the newest checkpoint in `workdir`, for inference.

    Reads only the parameters (the moving average of them when the run keeps
    one, `train.ema_decay`, and `average`) and the pruning masks of the saved
    train state: no optimizer, optimizer state or device mesh is built.

    Args:
      workdir: a training workdir.
      config: the config to use (checked against the saved one); default the
        saved config.
      average: False: the weights themselves, also when the run keeps an
        average.

    Returns:
      (config, params, masks, step).

    Raises:
      SubscaleError: no config or checkpoint in `workdir`, or one that does
        not fit `config`.
    """
    saved = load_config(workdir)
    if config is None:
        config = saved
    else:
        check_compatible(saved, config, workdir)
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    params, masks = abstract(param_shapes(config), sharding)
    fields = dict(params=params, masks=masks)
    if average and config.train.get("ema_decay", 0.0):
        fields["ema"] = params
    mngr = manager(workdir, config, read_only=True)
    try:
        state, step = restore(mngr, fields)
    finally:
        mngr.close()
    if state is None:
        raise errors.SubscaleError(f"{workdir}: no checkpoint to load")
    return config, state.get("ema") or state["params"], state["masks"], step
