"""G and D as a config describes them: the one place train, checkpoints, sampling, evaluation and
the official-file import build networks from a config."""

import jax
import jax.numpy as jnp
import ml_collections

from stylejax.errors import ConfigError
from stylejax.models import Discriminator, Generator
from stylejax.models.conv import Conv2d, conv2d
from stylejax.models.stylegan1 import StyleGAN1Discriminator, StyleGAN1Generator
from stylejax.ops.cpu_conv import CpuConv2d

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MODEL_IMPLS = ("reference", "tuned", "auto")
GENERATIONS = ("stylegan2", "stylegan1")  # config.model.generation


def resolve_impl(impl: str, backend: str) -> str:
    """'auto' is 'tuned' on the CPU backend only: there `python benchmarks/bench_train.py --config
    experiments/default.py --compare-impl` trained 2.0x faster with it; an H200 sampled ~10% slower."""
    if impl not in MODEL_IMPLS:
        raise ValueError(f"unknown model impl {impl!r}; use one of {MODEL_IMPLS}")
    if impl == "auto":
        return "tuned" if backend == "cpu" else "reference"
    return impl


def stride1_conv_for(impl: str) -> Conv2d:
    """The networks' stride-1 convolution for config.model.impl in this process."""
    if resolve_impl(impl, jax.default_backend()) == "reference":
        return conv2d
    return CpuConv2d(devices=jax.device_count())  # training splits the batch over all devices


def build_networks(config: ml_collections.ConfigDict, c_dim: int,
                   img_channels: int) -> tuple[Generator, Discriminator]:
    """G and D for images of `img_channels` channels and `c_dim` labels (0: unconditional)."""
    m = config.model
    if m.dtype not in DTYPES:
        raise ConfigError(f"model.dtype must be one of {sorted(DTYPES)}, got {m.dtype!r}")
    shared = dict(c_dim=c_dim, resolution=config.resolution, img_channels=img_channels,
                  channel_base=m.channel_base, channel_max=m.channel_max, dtype=DTYPES[m.dtype],
                  conv_clamp=m.conv_clamp,
                  # a run's config.json from before model.impl: the key changes speed, not results
                  stride1_conv=stride1_conv_for(m.get("impl", "auto")))
    if m.get("generation", "stylegan2") == "stylegan1":  # a config.json from before the key: 2
        del shared["conv_clamp"]
        G = StyleGAN1Generator(z_dim=m.z_dim, w_dim=m.w_dim, mapping_layers=m.mapping_layers,
                               use_noise=m.use_noise, **shared)
        return G, StyleGAN1Discriminator(mbstd_group_size=m.mbstd_group_size,
                                          mbstd_num_channels=m.mbstd_num_channels, **shared)
    G = Generator(z_dim=m.z_dim, w_dim=m.w_dim, mapping_layers=m.mapping_layers, modconv=m.modconv,
                  use_noise=m.use_noise, architecture=m.g_architecture, **shared)
    D = Discriminator(architecture=m.d_architecture, mbstd_group_size=m.mbstd_group_size,
                      mbstd_num_channels=m.mbstd_num_channels, **shared)
    return G, D
