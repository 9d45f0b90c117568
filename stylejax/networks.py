"""G and D as a config describes them: the one place train, checkpoints, sampling, evaluation and
the official-file import build networks from a config."""

import jax.numpy as jnp
import ml_collections

from stylejax.errors import ConfigError
from stylejax.models import Discriminator, Generator

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_networks(config: ml_collections.ConfigDict, c_dim: int,
                   img_channels: int) -> tuple[Generator, Discriminator]:
    """G and D for images of `img_channels` channels and `c_dim` labels (0: unconditional)."""
    m = config.model
    if m.dtype not in DTYPES:
        raise ConfigError(f"model.dtype must be one of {sorted(DTYPES)}, got {m.dtype!r}")
    shared = dict(c_dim=c_dim, resolution=config.resolution, img_channels=img_channels,
                  channel_base=m.channel_base, channel_max=m.channel_max, dtype=DTYPES[m.dtype],
                  conv_clamp=m.conv_clamp)
    G = Generator(z_dim=m.z_dim, w_dim=m.w_dim, mapping_layers=m.mapping_layers, modconv=m.modconv,
                  use_noise=m.use_noise, architecture=m.g_architecture, **shared)
    D = Discriminator(architecture=m.d_architecture, mbstd_group_size=m.mbstd_group_size,
                      mbstd_num_channels=m.mbstd_num_channels, **shared)
    return G, D
