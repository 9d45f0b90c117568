"""Configs and a generator shared by the metrics tests and their subprocess script."""

import jax
import jax.numpy as jnp
import numpy as np

from stylejax.configs import base_config
from stylejax.networks import build_networks
from tests.train_helpers import tiny_config


def metrics_config(data_dir: str, cache_dir: str, num_samples: int = 64, batch_size: int = 32):
    """The digits metrics on the digits dataset in `data_dir`, caches in `cache_dir`."""
    config = base_config()
    config.data_dir = data_dir
    config.metrics = ("fid_digits", "kid_digits")
    config.metrics_cache_dir = cache_dir
    config.metrics_num_samples = num_samples
    config.metrics_batch_size = batch_size
    return config


def tiny_generator_config():
    """tiny_config's networks at the digits' 32x32 (8 channels at the top block)."""
    config = tiny_config()
    config.resolution = 32
    return config


def tiny_generator(seed: int = 1):
    """(G, variables) of tiny_generator_config with standard-normal variables drawn by numpy:
    a deterministic generator without compiling G.init (10-20 s on a busy CPU)."""
    G, _ = build_networks(tiny_generator_config(), 0, 3)
    shapes = jax.eval_shape(G.init, {"params": jax.random.key(0), "noise": jax.random.key(0)},
                            jnp.zeros((1, G.z_dim)))
    rng = np.random.default_rng(seed)
    variables = jax.tree_util.tree_map(lambda s: rng.normal(size=s.shape).astype(s.dtype),
                                       shapes)
    return G, variables
