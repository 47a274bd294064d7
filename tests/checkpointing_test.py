"""Checkpoints: the newest complete one is restored, configs round-trip."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from subscale import checkpointing
from subscale import errors


def _state(value):
    return dict(step=jnp.int32(value), params=dict(w=jnp.full((3, 2), value, "f4")))


def _abstract():
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return checkpointing.abstract(jax.eval_shape(lambda: _state(0)), sharding)


def test_half_written_newest_checkpoint_is_ignored(tmp_path):
    config = tiny.get_config()
    workdir = str(tmp_path)
    mngr = checkpointing.manager(workdir, config)
    for step in (2, 4):
        assert checkpointing.save(mngr, step, _state(step), config)
    mngr.close()
    # What a run killed while saving step 6 leaves: orbax's temporary folder,
    # renamed to "6" only once every file is written.
    partial = tmp_path / "checkpoints" / "6.orbax-checkpoint-tmp-1700000000"
    (partial / "state").mkdir(parents=True)
    (partial / "state" / "manifest.ocdbt").write_bytes(b"\x00" * 7)

    mngr = checkpointing.manager(workdir, config)
    state, step = checkpointing.restore(mngr, _abstract())
    assert step == 4 and int(state["step"]) == 4
    np.testing.assert_array_equal(state["params"]["w"], np.full((3, 2), 4.0))
    assert checkpointing.save(mngr, 6, _state(6), config)  # the resumed run saves
    mngr.close()
    state, step = checkpointing.restore(
        checkpointing.manager(workdir, config, read_only=True), _abstract()
    )
    assert step == 6 and int(state["step"]) == 6


def test_no_checkpoint_restores_nothing(tmp_path):
    mngr = checkpointing.manager(str(tmp_path), tiny.get_config())
    assert checkpointing.restore(mngr, _abstract()) == (None, None)
    mngr.close()


def test_config_round_trip_and_compatibility(tmp_path):
    config = tiny.get_config()
    checkpointing.write_config(str(tmp_path), config)
    saved = checkpointing.load_config(str(tmp_path))
    # JSON has no tuples: they come back as lists.
    as_json = lambda d: json.loads(json.dumps(d))  # noqa: E731
    for group in ("data", "model", "train", "sampling", "sparsity"):
        assert saved[group].to_dict() == as_json(config[group].to_dict())
    checkpointing.check_compatible(saved, config, str(tmp_path))
    other = tiny.get_config()
    other.model.hidden_size = 32
    with pytest.raises(errors.SubscaleError, match="model.hidden_size=16") as e:
        checkpointing.check_compatible(saved, other, str(tmp_path))
    assert str(tmp_path) in str(e.value)


def test_load_config_of_a_folder_without_one(tmp_path):
    with pytest.raises(errors.SubscaleError, match="no config.json"):
        checkpointing.load_config(str(tmp_path))
    os.makedirs(tmp_path / "w")
    (tmp_path / "w" / "config.json").write_text("{not json")
    with pytest.raises(errors.SubscaleError, match="unreadable config"):
        checkpointing.load_config(str(tmp_path / "w"))
