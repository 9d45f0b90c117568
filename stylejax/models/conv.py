"""The stride-1 convolution every layer of the networks runs, as a parameter of the modules.

The networks take it as a function so that a tuned implementation (stylejax/ops) can replace it
without the networks knowing; `conv2d` here is the reference, lax's own convolution.
"""

from collections.abc import Callable

import jax.numpy as jnp
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")

Padding = tuple[tuple[int, int], tuple[int, int]]
# (x [N, H, W, I], w [kh, kw, I, O], (before, after) padding per spatial axis) -> [N, H', W', O]
Conv2d = Callable[[jnp.ndarray, jnp.ndarray, Padding], jnp.ndarray]


def conv2d(x: jnp.ndarray, w: jnp.ndarray, padding: Padding) -> jnp.ndarray:
    """Stride-1 cross-correlation, NHWC input, HWIO kernel, (before, after) padding per axis."""
    return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=NHWC)
