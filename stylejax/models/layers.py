"""Equalised-learning-rate layers shared by the generator and discriminator.

Weights are stored N(0, 1) / lr_multiplier and scaled at run time by
lr_multiplier / sqrt(fan_in), so that Adam sees every layer at the same scale
(Karras et al.).  Parameters stay float32; `dtype` is the compute dtype.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from stylejax.models.conv import Conv2d, conv2d
from stylejax.models.resample import DEFAULT_FILTER, conv2d_resample, setup_filter

LRELU_SLOPE = 0.2
ACTIVATION_GAIN = {"linear": 1.0, "lrelu": math.sqrt(2.0)}


def bias_act(x: jnp.ndarray, bias: jnp.ndarray | None, activation: str = "linear",
             gain: float = 1.0, clamp: float | None = None) -> jnp.ndarray:
    """Bias, activation, the activation's variance-preserving gain and the official conv_clamp
    (outputs clipped to [-clamp, clamp]), one fusible expression."""
    if activation not in ACTIVATION_GAIN:
        raise ValueError(f"unknown activation {activation!r}; use one of {sorted(ACTIVATION_GAIN)}")
    if bias is not None:
        x = x + bias.astype(x.dtype)
    if activation == "lrelu":
        x = jax.nn.leaky_relu(x, LRELU_SLOPE)
    total_gain = ACTIVATION_GAIN[activation] * gain
    if total_gain != 1:
        x = x * jnp.asarray(total_gain, x.dtype)
    return x if clamp is None else jnp.clip(x, -clamp, clamp)


def normalize_2nd_moment(x: jnp.ndarray, eps: float = 1e-8) -> jnp.ndarray:
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def _scaled_normal(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.normal(key, shape, dtype) * scale
    return init


class EqualDense(nn.Module):
    """Fully connected layer with equalised learning rate."""

    features: int
    activation: str = "linear"
    lr_multiplier: float = 1.0
    bias_init: float = 0.0
    use_bias: bool = True
    # StyleGAN (2018) folds the activation's gain (sqrt 2 before lrelu) into the weight, so that
    # its bias is not scaled: weight_gain sqrt(2) with a linear activation and lrelu after.
    weight_gain: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", _scaled_normal(1.0 / self.lr_multiplier),
                            (fan_in, self.features))
        weight = kernel * (self.weight_gain * self.lr_multiplier / math.sqrt(fan_in))
        y = jnp.dot(x.astype(self.dtype), weight.astype(self.dtype))
        bias = None
        if self.use_bias:
            bias = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,))
            bias = bias * self.lr_multiplier
        return bias_act(y, bias, self.activation)


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate and optional FIR up/down-sampling."""

    features: int
    kernel_size: int
    activation: str = "linear"
    use_bias: bool = True
    up: int = 1
    down: int = 1
    resample_filter: tuple[float, ...] = DEFAULT_FILTER
    conv_clamp: float | None = None  # clip outputs to +-conv_clamp * gain, as official
    stride1_conv: Conv2d = conv2d  # the stride-1 convolution (stylejax.models.conv)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, gain: float = 1.0) -> jnp.ndarray:
        in_channels = x.shape[-1]
        k = self.kernel_size
        kernel = self.param("kernel", _scaled_normal(1.0), (k, k, in_channels, self.features))
        weight = kernel * (1.0 / math.sqrt(in_channels * k * k))
        y = conv2d_resample(x.astype(self.dtype), weight.astype(self.dtype),
                            setup_filter(self.resample_filter), up=self.up, down=self.down,
                            padding=k // 2, stride1_conv=self.stride1_conv)
        bias = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(y, bias, self.activation, gain, clamp)
