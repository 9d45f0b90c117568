"""Config checks that fail before anything compiles: config.device_batch's rounds, the
augmentation keys."""

import pytest

from stylejax.configs import base_config
from stylejax.errors import ConfigError
from stylejax.train.validate import validate_config


@pytest.mark.parametrize("device_batch,devices", [(None, 8), (4, 8), (8, 4), (4, 1), (32, 1),
                                                  (16, 8), (64, 1)])
def test_device_batch_that_splits_every_share_into_whole_groups(device_batch, devices):
    """A device_batch of at least the share is one round: a preset fits any device count."""
    config = base_config()  # batch 32, minibatch-std groups of 4
    config.device_batch = device_batch
    validate_config(config, devices)


@pytest.mark.parametrize("device_batch,devices,message", [
    (3, 1, r"device_batch=3 does not divide 32, the images per device \(config.batch_size=32 over 1 "),
    (12, 2, r"device_batch=12 does not divide 16, the images per device \(config.batch_size=32 over 2 "),
    (0, 1, "device_batch must be >= 1 or None, got 0"),
    (2, 1, "device_batch=2 is not a multiple of the minibatch-stddev group size 4"),
])
def test_device_batch_that_does_not_is_refused(device_batch, devices, message):
    config = base_config()
    config.device_batch = device_batch
    with pytest.raises(ConfigError, match=message):
        validate_config(config, devices)


def test_without_minibatch_std_any_divisor_will_do():
    config = base_config()
    config.model.mbstd_num_channels = 0
    config.device_batch = 2
    validate_config(config, 1)


@pytest.mark.parametrize("key,value,message", [
    ("augment.mode", "adaptive", "config.augment.mode='adaptive' is not one of off, fixed, ada"),
    ("augment.pipe", "bgcx", "config.augment.pipe='bgcx' is not one of blit, geom, color"),
    ("augment.p", 1.5, r"config.augment.p must be in \[0, 1\], got 1.5"),
    ("augment.target", -0.1, r"config.augment.target must be in \[0, 1\], got -0.1"),
    ("augment.kimg", 0.0, r"config.augment.kimg must be > 0 \(thousands of images"),
    ("augment.interval", 0, "config.augment.interval must be >= 1"),
    ("max_images", -1, "config.max_images must be >= 0, got -1"),
])
def test_bad_augmentation_settings_are_refused(key, value, message):
    config = base_config()
    section, _, name = key.rpartition(".")
    (config[section] if section else config)[name] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(config, 1)
