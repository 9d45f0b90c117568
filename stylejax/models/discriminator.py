"""The StyleGAN2 'resnet' discriminator with minibatch stddev and projection conditioning."""

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from stylejax.models.architecture import channels_at, check_network, log2
from stylejax.models.conv import Conv2d, conv2d
from stylejax.models.layers import EqualConv2d, EqualDense
from stylejax.models.mapping import MappingNetwork
from stylejax.models.resample import DEFAULT_FILTER, downsample2d, setup_filter

SKIP_GAIN = math.sqrt(0.5)


def minibatch_stddev(x: jnp.ndarray, group_size: int, num_channels: int = 1,
                     num_shards: int = 1) -> jnp.ndarray:
    """Append the mean stddev over groups of samples as `num_channels` feature maps.

    As official: within each of the `num_shards` consecutive shares of the batch (the official
    code groups each GPU's batch), a share of n samples in groups of G = min(group_size, n) puts
    sample i in group i mod n/G (a reshape to [G, n/G]). Shares of G samples make consecutive
    groups, which training uses: the same groups on any device count.
    """
    n, h, w, c = x.shape
    if n % num_shards:
        raise ValueError(f"batch {n} does not split into {num_shards} equal shares")
    share = n // num_shards
    g = min(group_size, share)
    if share % g:
        raise ValueError(f"a share of {share} samples is not divisible by the minibatch-stddev "
                         f"group size {g}")
    f = num_channels
    y = x.astype(jnp.float32).reshape(num_shards, g, share // g, h, w, f, c // f)
    y = y - jnp.mean(y, axis=1, keepdims=True)
    y = jnp.sqrt(jnp.mean(jnp.square(y), axis=1) + 1e-8)  # [shards, share/g, h, w, f, c/f]
    y = jnp.mean(y, axis=(2, 3, 5))  # [shards, share/g, f]
    y = jnp.broadcast_to(y[:, None, :, None, None, :], (num_shards, g, share // g, h, w, f))
    return jnp.concatenate([x, y.reshape(n, h, w, f).astype(x.dtype)], axis=-1)


# resnet: a 1x1 down-sampling skip around each block's convs; orig: plain blocks;
# skip: every block (and the 4x4 epilogue) also reads the down-sampled image through a fromRGB.
D_ARCHITECTURES = ("resnet", "orig", "skip")


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs (the second down 2); 'resnet' adds a 1x1 down-sampling skip, both times sqrt(0.5)."""

    tmp_channels: int
    out_channels: int
    from_rgb: bool
    architecture: str = "resnet"
    resample_filter: tuple[float, ...] = DEFAULT_FILTER
    conv_clamp: float | None = None
    stride1_conv: Conv2d = conv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, img):
        """(features, image) -> (features at half the size, the image for the next block)."""
        unclamped = dict(resample_filter=self.resample_filter, stride1_conv=self.stride1_conv,
                         dtype=self.dtype)
        clamped = dict(unclamped, conv_clamp=self.conv_clamp)
        if self.from_rgb or self.architecture == "skip":
            y = EqualConv2d(self.tmp_channels, 1, "lrelu", name="fromrgb", **clamped)(img)
            x = y if x is None else x + y
            skip = self.architecture == "skip"
            img = downsample2d(img, setup_filter(self.resample_filter)) if skip else None
        if self.architecture != "resnet":
            x = EqualConv2d(self.tmp_channels, 3, "lrelu", name="conv0", **clamped)(x)
            return EqualConv2d(self.out_channels, 3, "lrelu", down=2, name="conv1", **clamped)(x), img
        y = EqualConv2d(self.out_channels, 1, use_bias=False, down=2, name="skip", **unclamped)(
            x, gain=SKIP_GAIN)
        x = EqualConv2d(self.tmp_channels, 3, "lrelu", name="conv0", **clamped)(x)
        x = EqualConv2d(self.out_channels, 3, "lrelu", down=2, name="conv1", **clamped)(
            x, gain=SKIP_GAIN)
        return y + x, img


class Discriminator(nn.Module):
    """D(img, c) -> logits [N, 1]; img NHWC in [-1, 1]."""

    c_dim: int = 0
    architecture: str = "resnet"
    resolution: int = 1024
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    cmap_dim: int | None = None
    mapping_layers: int = 8
    conv_clamp: float | None = None
    stride1_conv: Conv2d = conv2d  # the stride-1 convolution (stylejax.models.conv)
    dtype: Any = jnp.float32

    def __post_init__(self):
        check_network("discriminator", self.architecture, D_ARCHITECTURES, self.resolution, self.channel_base,
                      self.channel_max)
        c4 = channels_at(4, self.channel_base, self.channel_max)
        if self.mbstd_num_channels < 0 or (self.mbstd_num_channels and c4 % self.mbstd_num_channels):
            raise ValueError(f"mbstd_num_channels {self.mbstd_num_channels} must be >= 0 and "
                             f"divide the {c4} channels at 4x4")
        if self.mbstd_num_channels and self.mbstd_group_size < 1:
            raise ValueError(f"mbstd_group_size must be >= 1, got {self.mbstd_group_size}")
        super().__post_init__()

    @nn.compact
    def __call__(self, img: jnp.ndarray, c: jnp.ndarray | None = None,
                 mbstd_shards: int = 1) -> jnp.ndarray:
        """`mbstd_shards`: the batch's consecutive shares that minibatch-stddev groups stay within
        (1: the official network's grouping of this batch)."""
        ch = lambda res: channels_at(res, self.channel_base, self.channel_max)  # noqa: E731
        x = None
        img = img.astype(self.dtype)
        for level in range(log2(self.resolution), 2, -1):
            res = 2 ** level
            x, img = DiscriminatorBlock(ch(res), ch(res // 2), from_rgb=res == self.resolution,
                                        architecture=self.architecture, conv_clamp=self.conv_clamp,
                                        stride1_conv=self.stride1_conv, dtype=self.dtype,
                                        name=f"b{res}")(x, img)

        c4 = ch(4)
        if self.architecture == "skip":
            x = x + EqualConv2d(c4, 1, "lrelu", stride1_conv=self.stride1_conv, dtype=self.dtype,
                                name="fromrgb")(img)
        if self.mbstd_num_channels > 0:
            x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_channels, mbstd_shards)
        x = EqualConv2d(c4, 3, "lrelu", conv_clamp=self.conv_clamp, stride1_conv=self.stride1_conv,
                        dtype=self.dtype, name="conv")(x)
        x = EqualDense(c4, "lrelu", dtype=self.dtype, name="fc")(x.reshape(x.shape[0], -1))
        cmap_dim = (self.cmap_dim or c4) if self.c_dim > 0 else 0
        x = EqualDense(cmap_dim or 1, dtype=self.dtype, name="out")(x).astype(jnp.float32)
        if cmap_dim == 0:
            return x
        if c is None:
            raise ValueError(f"this discriminator is conditional (c_dim={self.c_dim}): pass labels c")
        cmap = MappingNetwork(z_dim=0, c_dim=self.c_dim, w_dim=cmap_dim, num_ws=None,
                              num_layers=self.mapping_layers, w_avg_beta=None,
                              dtype=self.dtype, name="mapping")(None, c)
        return jnp.sum(x * cmap, axis=1, keepdims=True) * (1.0 / math.sqrt(cmap_dim))
