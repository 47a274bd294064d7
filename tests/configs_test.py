"""Every shipped config builds and passes validation."""

import importlib
import os

import pytest

from subscale import config_validation
from subscale import errors
from subscale import models

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")
NAMES = sorted(
    name[:-3]
    for name in os.listdir(CONFIGS)
    if name.endswith(".py") and not name.startswith("_")
)


def test_the_shipped_configs_are_found():
    assert {"default", "demo", "demo_long", "tiny", "subscale16"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_is_valid(name):
    config = importlib.import_module(f"configs.{name}").get_config()
    config_validation.validate(config)
    cfg = models.ModelConfig.from_config(config)
    assert cfg.hidden_size % 2 == 0


def test_training_batch_must_divide_among_the_devices():
    config = importlib.import_module("configs.tiny").get_config()
    config.train.batch_size = 6
    config_validation.validate(config, num_devices=3)
    with pytest.raises(errors.SubscaleError, match="train.batch_size=6"):
        config_validation.validate(config, num_devices=4)
