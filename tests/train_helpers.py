"""A tiny config and a fixed random batch for train-step tests (seconds per step on CPU)."""

import numpy as np

from stylejax.configs import base_config


def tiny_config():
    config = base_config()
    config.resolution = 16
    config.batch_size = 32
    config.model.update(z_dim=32, w_dim=32, channel_base=256, channel_max=32, mapping_layers=2)
    config.loss.r1_gamma = 1.0
    return config


def random_batch(config, seed: int = 123) -> dict:
    rng = np.random.default_rng(seed)
    res = config.resolution
    images = rng.uniform(-1, 1, (config.batch_size, res, res, 3)).astype(np.float32)
    return {"image": images, "label": np.zeros((config.batch_size, 0), np.float32)}
