"""The StyleGAN2 generator: mapping network + synthesis network."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from stylejax.models.architecture import check_network
from stylejax.models.conv import Conv2d, conv2d
from stylejax.models.mapping import MappingNetwork
from stylejax.models.modconv import MODCONV_FORMS
from stylejax.models.styles import num_ws_for
from stylejax.models.synthesis import G_ARCHITECTURES, SynthesisNetwork, check_noise_mode


class Generator(nn.Module):
    """G(z, c) -> images NHWC in about [-1, 1], float32.

    Variables: 'params' (trained), 'stats' (w_avg) and 'noise_consts' (the
    fixed noise of noise_mode='const'; none with use_noise=False).  Random
    noise needs a 'noise' rng.
    Keyword names and defaults follow the official implementation; `modconv`
    picks the modulated-conv form, `stride1_conv` the stride-1 convolution (stylejax.models.conv)
    and `dtype` the compute dtype.
    """

    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    resolution: int = 1024
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    architecture: str = "skip"
    conv_clamp: float | None = None  # the official clamp of every conv's output (256 with fp16)
    modconv: str = "shared"
    use_noise: bool = True
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    def __post_init__(self):
        check_network("generator", self.architecture, G_ARCHITECTURES, self.resolution, self.channel_base,
                      self.channel_max)
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise ValueError(f"conv_clamp must be > 0 or None, got {self.conv_clamp}")
        if self.modconv not in MODCONV_FORMS:
            raise ValueError(f"unknown modconv form {self.modconv!r}; use one of {MODCONV_FORMS}")
        if self.z_dim < 1 or self.w_dim < 1 or self.c_dim < 0 or self.mapping_layers < 1:
            raise ValueError("need z_dim >= 1, w_dim >= 1, c_dim >= 0 and mapping_layers >= 1, got "
                             f"{self.z_dim}, {self.w_dim}, {self.c_dim}, {self.mapping_layers}")
        if jnp.dtype(self.dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)):
            raise ValueError(f"compute dtype must be float32 or bfloat16, got {self.dtype}")
        super().__post_init__()

    @property
    def num_ws(self) -> int:
        return num_ws_for(self.resolution)

    def setup(self):
        self.mapping = MappingNetwork(
            z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
            num_layers=self.mapping_layers, lr_multiplier=self.mapping_lr_multiplier,
            w_avg_beta=self.w_avg_beta, dtype=self.dtype)
        self.synthesis = SynthesisNetwork(
            w_dim=self.w_dim, resolution=self.resolution, img_channels=self.img_channels,
            channel_base=self.channel_base, channel_max=self.channel_max,
            architecture=self.architecture, modconv=self.modconv, use_noise=self.use_noise,
            conv_clamp=self.conv_clamp, stride1_conv=self.stride1_conv, dtype=self.dtype)

    def map_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None,
                    update_emas: bool = False) -> jnp.ndarray:
        """z [N, z_dim] -> ws [N, num_ws, w_dim]."""
        return self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas)

    def synthesize(self, ws: jnp.ndarray, noise_mode: str = "random") -> jnp.ndarray:
        """ws [N, num_ws, w_dim] -> images [N, res, res, img_channels], float32."""
        check_noise_mode(noise_mode)
        return self.synthesis(ws, noise_mode).astype(jnp.float32)

    def __call__(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None,
                 noise_mode: str = "random", update_emas: bool = False) -> jnp.ndarray:
        ws = self.map_latents(z, c, truncation_psi, truncation_cutoff, update_emas)
        return self.synthesize(ws, noise_mode)
