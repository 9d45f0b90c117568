"""StyleGAN (Karras, Laine, Aila 2019; NVlabs/stylegan networks_stylegan.py): the AdaIN generator
and its discriminator, with the level-of-detail input of progressive growing.

Same API as the StyleGAN2 networks (map_latents / synthesize / __call__, the 'params', 'stats'
and 'noise_consts' collections), plus `lod`: 0 is full resolution, lod k + t (0 <= t <= 1) blends
the outputs of resolution / 2^k and resolution / 2^(k+1) by t, as the official 'linear'
structure. Layers apply the he gain to the weight (the bias is not scaled), as the official code.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from stylejax.models.architecture import channels_at, check_network, log2
from stylejax.models.conv import NHWC, Conv2d, conv2d
from stylejax.models.discriminator import minibatch_stddev
from stylejax.models.layers import LRELU_SLOPE, EqualDense
from stylejax.models.mapping import MappingNetwork
from stylejax.models.resample import setup_filter, upfirdn2d
from stylejax.models.styles import num_ws_for
from stylejax.models.synthesis import add_noise, check_noise_mode

HE_GAIN = math.sqrt(2.0)
BLUR_FILTER = (1.0, 2.0, 1.0)
FUSED_MIN_RESOLUTION = 128  # the official fused_scale='auto': fused resampling convs from 128x128
ARCHITECTURES = ("stylegan1",)


def lrelu(x: jnp.ndarray, bias: jnp.ndarray | None = None) -> jnp.ndarray:
    """Leaky ReLU (slope 0.2, no gain: the layers' weights carry it) after an optional bias."""
    return jax.nn.leaky_relu(x if bias is None else x + bias.astype(x.dtype), LRELU_SLOPE)


def blur2d(x: jnp.ndarray) -> jnp.ndarray:
    """The [1, 2, 1] low-pass filter (outer product, normalised), same size out."""
    return upfirdn2d(x, setup_filter(BLUR_FILTER), padding=(1, 1))


def upscale2d(x: jnp.ndarray, factor: int = 2) -> jnp.ndarray:
    """Nearest-neighbour upsampling."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def downscale2d(x: jnp.ndarray, factor: int = 2) -> jnp.ndarray:
    """Box-filter downsampling: the mean of each factor x factor block."""
    n, h, w, c = x.shape
    return jnp.mean(x.reshape(n, h // factor, factor, w // factor, factor, c), axis=(2, 4))


def lerp_clip(a: jnp.ndarray, b: jnp.ndarray, t) -> jnp.ndarray:
    """a moved toward b by t clipped to [0, 1]: the official blend of two levels of detail."""
    return a + (b - a) * jnp.clip(jnp.asarray(t, a.dtype), 0, 1)


def instance_norm(x: jnp.ndarray, eps: float = 1e-8) -> jnp.ndarray:
    """Each map of each sample to zero mean and unit variance, in float32."""
    y = x.astype(jnp.float32)
    y = y - jnp.mean(y, axis=(1, 2), keepdims=True)
    return (y * lax.rsqrt(jnp.mean(jnp.square(y), axis=(1, 2), keepdims=True) + eps)).astype(x.dtype)


def _box_kernel(w: jnp.ndarray) -> jnp.ndarray:
    """The 3x3 kernel zero-padded to 4x4 and summed over its four 1-pixel shifts: the official
    fused form of nearest-upsample or box-downsample with the conv."""
    w = jnp.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    return w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]


class Conv2dLayer(nn.Module):
    """Equalised-lr conv without bias, optionally up (nearest) or down (box) by 2. `fused`: the
    official fused form, a transposed / strided 4x4 conv (the networks use it from
    FUSED_MIN_RESOLUTION on); fused up equals nearest upsampling and the kernel flipped."""

    features: int
    kernel_size: int
    gain: float = HE_GAIN
    up: bool = False
    down: bool = False
    fused: bool = False
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        k, in_channels = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, in_channels, self.features))
        w = (kernel * (self.gain / math.sqrt(in_channels * k * k))).astype(self.dtype)
        x = x.astype(self.dtype)
        if self.fused and self.up:  # TF conv2d_transpose, stride 2, 'SAME', of the 4x4 kernel
            return lax.conv_general_dilated(x, _box_kernel(w)[::-1, ::-1], (1, 1), ((2, 2), (2, 2)),
                                            lhs_dilation=(2, 2), dimension_numbers=NHWC)
        if self.fused and self.down:  # TF conv2d, stride 2, 'SAME', of the 4x4 kernel / 4
            return lax.conv_general_dilated(x, _box_kernel(w) * 0.25, (2, 2), ((1, 1), (1, 1)),
                                            dimension_numbers=NHWC)
        if self.up:
            x = upscale2d(x)
        x = self.stride1_conv(x, w, ((k // 2, k // 2), (k // 2, k // 2)))
        return downscale2d(x) if self.down else x


class StyleMod(nn.Module):
    """AdaIN's style: scale and bias per channel from w, applied as x * (scale + 1) + bias."""

    @nn.compact
    def __call__(self, x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
        channels = x.shape[-1]
        style = EqualDense(2 * channels, dtype=x.dtype, name="affine")(w).reshape(-1, 2, channels)
        return x * (style[:, None, None, 0] + 1) + style[:, None, None, 1]


class SynthesisLayer(nn.Module):
    """The input (a conv, or the learned constant's block input as is), then per-pixel noise
    scaled per channel, bias, lrelu, instance norm and the style."""

    features: int
    resolution: int
    conv: bool = True
    up: bool = False
    use_noise: bool = True
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, w: jnp.ndarray, noise_mode: str = "random") -> jnp.ndarray:
        if self.conv:
            fused = self.up and self.resolution >= FUSED_MIN_RESOLUTION
            x = Conv2dLayer(self.features, 3, up=self.up, fused=fused, stride1_conv=self.stride1_conv,
                            dtype=self.dtype, name="conv")(x)
            if self.up:
                x = blur2d(x)
        if self.use_noise:
            res = self.resolution
            noise_const = self.variable(
                "noise_consts", "noise_const",
                lambda: jax.random.normal(self.make_rng("params"), (res, res))).value
            strength = self.param("noise_strength", nn.initializers.zeros, (self.features,))
            x = add_noise(x, noise_const, strength, noise_mode, lambda: self.make_rng("noise"))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x = instance_norm(lrelu(x, bias))
        return StyleMod(name="style")(x, w)


class ToRGB(nn.Module):
    """1x1 conv (gain 1) with bias to image channels."""

    img_channels: int
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = Conv2dLayer(self.img_channels, 1, gain=1.0, stride1_conv=self.stride1_conv,
                        dtype=self.dtype, name="conv")(x)
        return x + self.param("bias", nn.initializers.zeros, (self.img_channels,)).astype(x.dtype)


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, res, res, img_channels]: a learned 4x4 constant, two
    layers per resolution (the first of each block up 2 and blurred), a ToRGB per resolution."""

    resolution: int
    img_channels: int
    channel_base: int
    channel_max: int
    use_noise: bool = True
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, ws: jnp.ndarray, noise_mode: str = "random", lod=0.0) -> jnp.ndarray:
        layer = dict(use_noise=self.use_noise, stride1_conv=self.stride1_conv, dtype=self.dtype)
        top = log2(self.resolution)
        c4 = channels_at(4, self.channel_base, self.channel_max)
        const = self.param("const", nn.initializers.ones, (4, 4, c4))
        x = jnp.broadcast_to(const.astype(self.dtype), (ws.shape[0], 4, 4, c4))
        images = None
        for level in range(2, top + 1):
            res = 2 ** level
            channels = channels_at(res, self.channel_base, self.channel_max)
            x = SynthesisLayer(channels, res, conv=res > 4, up=res > 4, name=f"b{res}_conv0",
                               **layer)(x, ws[:, 2 * level - 4], noise_mode)
            x = SynthesisLayer(channels, res, name=f"b{res}_conv1", **layer)(
                x, ws[:, 2 * level - 3], noise_mode)
            img = ToRGB(self.img_channels, self.stride1_conv, self.dtype, name=f"b{res}_torgb")(x)
            images = img if images is None else lerp_clip(img, upscale2d(images), lod - (top - level))
        return images


class StyleGAN1Generator(nn.Module):
    """G(z) -> images NHWC in about [-1, 1], float32: the StyleGAN2 Generator's API and
    collections, with the AdaIN synthesis network and an optional `lod`."""

    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    resolution: int = 1024
    img_channels: int = 3
    channel_base: int = 16384
    channel_max: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    use_noise: bool = True
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    def __post_init__(self):
        check_network("generator", "stylegan1", ARCHITECTURES, self.resolution, self.channel_base,
                      self.channel_max)
        if self.c_dim:
            raise ValueError("StyleGAN (2018) networks are unconditional here; set c_dim 0 "
                             "(config.conditional=False)")
        if self.z_dim < 1 or self.w_dim < 1 or self.mapping_layers < 1:
            raise ValueError("need z_dim >= 1, w_dim >= 1 and mapping_layers >= 1, got "
                             f"{self.z_dim}, {self.w_dim}, {self.mapping_layers}")
        super().__post_init__()

    @property
    def num_ws(self) -> int:
        return num_ws_for(self.resolution)

    def setup(self):
        self.mapping = MappingNetwork(
            z_dim=self.z_dim, c_dim=0, w_dim=self.w_dim, num_ws=self.num_ws,
            num_layers=self.mapping_layers, lr_multiplier=self.mapping_lr_multiplier,
            w_avg_beta=self.w_avg_beta, weight_gain=HE_GAIN, dtype=self.dtype)
        self.synthesis = SynthesisNetwork(
            resolution=self.resolution, img_channels=self.img_channels,
            channel_base=self.channel_base, channel_max=self.channel_max, use_noise=self.use_noise,
            stride1_conv=self.stride1_conv, dtype=self.dtype)

    def map_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None,
                    update_emas: bool = False) -> jnp.ndarray:
        """z [N, z_dim] -> ws [N, num_ws, w_dim]."""
        return self.mapping(z, None, truncation_psi, truncation_cutoff, update_emas)

    def synthesize(self, ws: jnp.ndarray, noise_mode: str = "random", lod=0.0) -> jnp.ndarray:
        """ws [N, num_ws, w_dim] -> images [N, res, res, img_channels], float32."""
        check_noise_mode(noise_mode)
        return self.synthesis(ws, noise_mode, lod).astype(jnp.float32)

    def __call__(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None,
                 noise_mode: str = "random", update_emas: bool = False, lod=0.0) -> jnp.ndarray:
        ws = self.map_latents(z, c, truncation_psi, truncation_cutoff, update_emas)
        return self.synthesize(ws, noise_mode, lod)


class FromRGB(nn.Module):
    """1x1 conv with bias and lrelu from image channels."""

    features: int
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, img: jnp.ndarray) -> jnp.ndarray:
        x = Conv2dLayer(self.features, 1, stride1_conv=self.stride1_conv, dtype=self.dtype,
                        name="conv")(img)
        return lrelu(x, self.param("bias", nn.initializers.zeros, (self.features,)))


class DiscriminatorBlock(nn.Module):
    """conv0 3x3, then blur and conv1 3x3 down 2, each with bias and lrelu."""

    tmp_channels: int
    out_channels: int
    resolution: int
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        conv = dict(stride1_conv=self.stride1_conv, dtype=self.dtype)
        x = Conv2dLayer(self.tmp_channels, 3, name="conv0", **conv)(x)
        x = lrelu(x, self.param("bias0", nn.initializers.zeros, (self.tmp_channels,)))
        x = Conv2dLayer(self.out_channels, 3, down=True, name="conv1",
                        fused=self.resolution >= FUSED_MIN_RESOLUTION, **conv)(blur2d(x))
        return lrelu(x, self.param("bias1", nn.initializers.zeros, (self.out_channels,)))


class StyleGAN1Discriminator(nn.Module):
    """D(img) -> logits [N, 1]; img NHWC in [-1, 1]. At lod k + t it reads the image box-filtered
    to resolution / 2^k, blending in the fromRGB of resolution / 2^(k+1) by t."""

    c_dim: int = 0
    resolution: int = 1024
    img_channels: int = 3
    channel_base: int = 16384
    channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    def __post_init__(self):
        check_network("discriminator", "stylegan1", ARCHITECTURES, self.resolution,
                      self.channel_base, self.channel_max)
        if self.c_dim:
            raise ValueError("StyleGAN (2018) networks are unconditional here; set c_dim 0 "
                             "(config.conditional=False)")
        c4 = channels_at(4, self.channel_base, self.channel_max)
        if self.mbstd_num_channels < 0 or (self.mbstd_num_channels and c4 % self.mbstd_num_channels):
            raise ValueError(f"mbstd_num_channels {self.mbstd_num_channels} must be >= 0 and "
                             f"divide the {c4} channels at 4x4")
        super().__post_init__()

    @nn.compact
    def __call__(self, img: jnp.ndarray, c: jnp.ndarray | None = None, mbstd_shards: int = 1,
                 lod=0.0) -> jnp.ndarray:
        ch = lambda res: channels_at(res, self.channel_base, self.channel_max)  # noqa: E731
        conv = dict(stride1_conv=self.stride1_conv, dtype=self.dtype)
        img = img.astype(self.dtype)
        top = log2(self.resolution)
        x = FromRGB(ch(self.resolution), name=f"b{self.resolution}_fromrgb", **conv)(img)
        for level in range(top, 2, -1):
            res = 2 ** level
            x = DiscriminatorBlock(ch(res), ch(res // 2), res, name=f"b{res}", **conv)(x)
            img = downscale2d(img)
            y = FromRGB(ch(res // 2), name=f"b{res // 2}_fromrgb", **conv)(img)
            x = lerp_clip(x, y, lod - (top - level))
        if self.mbstd_num_channels > 0 and self.mbstd_group_size > 1:
            x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_channels, mbstd_shards)
        x = Conv2dLayer(ch(4), 3, name="b4_conv", **conv)(x)
        x = lrelu(x, self.param("b4_conv_bias", nn.initializers.zeros, (ch(4),)))
        x = EqualDense(ch(2), weight_gain=HE_GAIN, dtype=self.dtype, name="b4_fc")(
            x.reshape(x.shape[0], -1))
        x = EqualDense(1, dtype=self.dtype, name="b4_out")(lrelu(x))
        return x.astype(jnp.float32)
