"""Synthesis network: per-layer styles ws to an image, in the official 'skip', 'orig' and
'resnet' architectures."""

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from stylejax.models.architecture import channels_at, log2
from stylejax.models.conv import Conv2d, conv2d
from stylejax.models.layers import EqualConv2d, EqualDense, bias_act
from stylejax.models.modconv import modulated_conv2d
from stylejax.models.resample import DEFAULT_FILTER, setup_filter, upsample2d

NOISE_MODES = ("random", "const", "none")
# skip: every block's ToRGB summed over upsampled images; orig: one ToRGB at the end;
# resnet: orig with a 1x1 up-sampling skip around each block's convs.
G_ARCHITECTURES = ("skip", "orig", "resnet")
SKIP_GAIN = math.sqrt(0.5)


def check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {noise_mode!r}; use one of {NOISE_MODES}")


def add_noise(x: jnp.ndarray, noise_const: jnp.ndarray, strength: jnp.ndarray, noise_mode: str,
              noise_rng: Callable[[], jax.Array]) -> jnp.ndarray:
    """x [N, H, W, C] plus per-pixel noise times `strength` (a scalar, or one per channel):
    drawn from `noise_rng()` ('random'), the fixed [H, W] `noise_const` ('const') or none."""
    if noise_mode == "random":
        noise = jax.random.normal(noise_rng(), (*x.shape[:3], 1), jnp.float32)
        return x + (noise * strength).astype(x.dtype)
    if noise_mode == "const":
        return x + (noise_const[None, :, :, None] * strength).astype(x.dtype)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally up 2), per-pixel noise, bias, lrelu, conv_clamp.

    Random noise draws from the 'noise' rng stream; flax folds the layer's
    path into the key, so every layer gets different noise.  The constant
    noise is a fixed buffer in the 'noise_consts' collection.  Without noise
    inputs the layer has neither, and noise_mode changes nothing.
    """

    features: int
    resolution: int
    up: int = 1
    kernel_size: int = 3
    modconv: str = "shared"
    use_noise: bool = True
    resample_filter: tuple[float, ...] = DEFAULT_FILTER
    conv_clamp: float | None = None
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, w: jnp.ndarray, noise_mode: str = "random",
                 gain: float = 1.0) -> jnp.ndarray:
        in_channels = x.shape[-1]
        k = self.kernel_size
        styles = EqualDense(in_channels, bias_init=1.0, name="affine", dtype=self.dtype)(w)
        weight = self.param("weight", nn.initializers.normal(1.0), (k, k, in_channels, self.features))
        noise = self._noise_variables() if self.use_noise else None
        bias = self.param("bias", nn.initializers.zeros, (self.features,))

        x = modulated_conv2d(x.astype(self.dtype), weight, styles, up=self.up, padding=k // 2,
                             resample_filter=setup_filter(self.resample_filter), form=self.modconv,
                             stride1_conv=self.stride1_conv)
        check_noise_mode(noise_mode)
        if noise is not None:
            x = add_noise(x, *noise, noise_mode, lambda: self.make_rng("noise"))
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, bias, "lrelu", gain, clamp)

    def _noise_variables(self) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The constant noise and the learned strength, made before the bias: flax draws each
        variable's init key in creation order, so a seed keeps initialising the same values."""
        noise_const = self.variable(
            "noise_consts", "noise_const",
            lambda: jax.random.normal(self.make_rng("params"), (self.resolution, self.resolution)))
        return noise_const.value, self.param("noise_strength", nn.initializers.zeros, ())

class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation to image channels."""

    img_channels: int
    modconv: str = "shared"
    conv_clamp: float | None = None
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
        in_channels = x.shape[-1]
        styles = EqualDense(in_channels, bias_init=1.0, name="affine", dtype=self.dtype)(w)
        styles = styles * (1.0 / math.sqrt(in_channels))
        weight = self.param("weight", nn.initializers.normal(1.0), (1, 1, in_channels, self.img_channels))
        bias = self.param("bias", nn.initializers.zeros, (self.img_channels,))
        x = modulated_conv2d(x, weight, styles, demodulate=False, form=self.modconv,
                             stride1_conv=self.stride1_conv)
        return bias_act(x, bias, "linear", clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (conv0 up 2), conv1 and, in 'skip' or at the last block, ToRGB.

    Consumes ws[:, 0:num_conv + num_torgb]; a ToRGB shares its w with the next
    block's first conv, as in the official network.
    """

    features: int
    resolution: int
    img_channels: int
    is_last: bool
    architecture: str = "skip"
    modconv: str = "shared"
    use_noise: bool = True
    conv_clamp: float | None = None
    resample_filter: tuple[float, ...] = DEFAULT_FILTER
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @property
    def is_first(self) -> bool:
        return self.resolution == 4

    @property
    def num_conv(self) -> int:
        return 1 if self.is_first else 2

    @property
    def num_torgb(self) -> int:
        return int(self.is_last or self.architecture == "skip")

    @nn.compact
    def __call__(self, x, img, ws, noise_mode: str = "random"):
        layer = dict(features=self.features, resolution=self.resolution, modconv=self.modconv,
                     use_noise=self.use_noise, resample_filter=self.resample_filter,
                     conv_clamp=self.conv_clamp, stride1_conv=self.stride1_conv, dtype=self.dtype)
        if self.is_first:
            const = self.param("const", nn.initializers.normal(1.0), (4, 4, self.features))
            x = jnp.broadcast_to(const.astype(self.dtype), (ws.shape[0], 4, 4, self.features))
            x = SynthesisLayer(name="conv1", **layer)(x, ws[:, 0], noise_mode)
        elif self.architecture == "resnet":
            y = EqualConv2d(self.features, 1, use_bias=False, up=2, resample_filter=self.resample_filter,
                            stride1_conv=self.stride1_conv, dtype=self.dtype, name="skip")(
                x, gain=SKIP_GAIN)
            x = SynthesisLayer(up=2, name="conv0", **layer)(x, ws[:, 0], noise_mode)
            x = y + SynthesisLayer(name="conv1", **layer)(x, ws[:, 1], noise_mode, gain=SKIP_GAIN)
        else:
            x = SynthesisLayer(up=2, name="conv0", **layer)(x, ws[:, 0], noise_mode)
            x = SynthesisLayer(name="conv1", **layer)(x, ws[:, 1], noise_mode)
        if img is not None:
            img = upsample2d(img, setup_filter(self.resample_filter))
        if self.num_torgb:
            y = ToRGB(self.img_channels, modconv=self.modconv, conv_clamp=self.conv_clamp,
                      stride1_conv=self.stride1_conv, dtype=self.dtype, name="torgb")(
                x, ws[:, self.num_conv])
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, res, res, img_channels] in the compute dtype."""

    w_dim: int
    resolution: int
    img_channels: int
    channel_base: int = 32768
    channel_max: int = 512
    architecture: str = "skip"
    modconv: str = "shared"
    use_noise: bool = True
    conv_clamp: float | None = None
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, ws: jnp.ndarray, noise_mode: str = "random") -> jnp.ndarray:
        x = img = None
        w_idx = 0
        for level in range(2, log2(self.resolution) + 1):
            res = 2 ** level
            block = SynthesisBlock(channels_at(res, self.channel_base, self.channel_max), res,
                                   self.img_channels, is_last=res == self.resolution,
                                   architecture=self.architecture, modconv=self.modconv,
                                   use_noise=self.use_noise, conv_clamp=self.conv_clamp,
                                   stride1_conv=self.stride1_conv, dtype=self.dtype,
                                   name=f"b{res}")
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + block.num_torgb], noise_mode)
            w_idx += block.num_conv
        return img
