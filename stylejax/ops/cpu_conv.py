"""The stride-1 convolution with gradients shaped for XLA CPU: model.impl = "tuned".

Numerically the reference (stylejax.models.conv.conv2d); only its VJP differs, from measurements
on a 2-core CPU (benchmarks/bench_conv.py and RESULTS.md, "The weight gradient over batch chunks"
and the sessions after it):

- XLA CPU's weight-gradient conv slows down once its reduction over batch x output pixels passes
  a few thousand rows (a 32x32, 128-channel layer at batch 32: 40% of the matmul peak; the same
  work as 16 summed two-sample convs: 65%). So the weight gradient is a sum over batch chunks of
  at most CHUNK_ROWS rows, but only on one device: chunks of a batch split over several devices
  moved samples between them (200-480 collective-permutes per phase on 8 CPU devices).
- A kernel of at most 2x2 taps (the space-to-depth conv, the 1x1 convs) or a conv padded past
  kernel - 1 in total (the up-conv's 2x2 phase kernel, whose weight-gradient conv ran at 1% of
  the peak) takes its weight gradient as one matmul over the kernel's shifted views; its forward
  rule is this conv again, so that second derivatives take the matmul too.
- A conv padded less than kernel - 1 in total ran at a third of the speed of the same conv padded
  to kernel - 1, so its forward is padded on the far side and cropped.
- The input gradient is this conv again (flipped kernel, mirrored padding), so the double
  gradients of R1 and path length get the same weight gradients.

The whole train step gained 1.01-1.10x on a 2-core CPU; sampling at 256 on an H200 was about 10%
slower with it, so model.impl="auto" takes it on the CPU backend only.
"""

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from stylejax.models.conv import Padding, conv2d

CHUNK_ROWS = 2048


@dataclasses.dataclass(frozen=True)
class CpuConv2d:
    """The tuned stride-1 conv (a stylejax.models.conv.Conv2d) for a batch split over `devices`
    devices; a frozen dataclass, so that networks built with equal settings compare equal."""

    devices: int = 1

    def __call__(self, x: jnp.ndarray, w: jnp.ndarray, padding: Padding) -> jnp.ndarray:
        padding = tuple((int(p0), int(p1)) for p0, p1 in padding)
        if all(0 <= p <= k - 1 for (p0, p1), k in zip(padding, w.shape[:2], strict=True) for p in (p0, p1)):
            return _tuned_conv(x, w, padding, self.devices == 1)
        return conv2d(x, w, padding)  # a crop, or past kernel - 1 on a side: no mirrored input gradient


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _tuned_conv(x, w, padding, chunked):
    return _widened_then_cropped(x, w, padding)


def _widened_then_cropped(x, w, padding):
    """The conv padded on the far side up to kernel - 1 in total, cropped to the true output."""
    widened = tuple((p0, max(p1, k - 1 - p0)) for (p0, p1), k in zip(padding, w.shape[:2], strict=True))
    if widened == padding:
        return conv2d(x, w, padding)
    out_h, out_w = (n + p0 + p1 - k + 1
                    for n, (p0, p1), k in zip(x.shape[1:3], padding, w.shape[:2], strict=True))
    return conv2d(x, w, widened)[:, :out_h, :out_w]


def _weight_gradient_over_views(w, padding) -> bool:
    """At most 2x2 taps, or padded past kernel - 1 in total: the module docstring's second rule."""
    over_padded = any(p0 + p1 > k - 1 for (p0, p1), k in zip(padding, w.shape[:2], strict=True))
    return over_padded or w.shape[0] * w.shape[1] <= 4


def _forward(x, w, padding, chunked):
    if _weight_gradient_over_views(w, padding):  # second derivatives take the views too
        return _tuned_conv(x, w, padding, chunked), (x, w)
    return _widened_then_cropped(x, w, padding), (x, w)


def _backward(padding, chunked, residuals, dy):
    x, w = residuals
    mirrored = tuple((k - 1 - p0, k - 1 - p1) for (p0, p1), k in zip(padding, w.shape[:2], strict=True))
    dx = _tuned_conv(dy, jnp.swapaxes(w[::-1, ::-1], 2, 3), mirrored, chunked)
    kernel = jax.ShapeDtypeStruct(w.shape, w.dtype)
    if _weight_gradient_over_views(w, padding):
        return dx, _weight_gradient_from_views(x, dy, kernel, padding)
    chunk = _samples_per_chunk(x.shape[0], dy.shape[1] * dy.shape[2]) if chunked else x.shape[0]
    return dx, _weight_gradient_over_chunks(x, dy, kernel, padding, chunk)


def _samples_per_chunk(batch: int, rows_per_sample: int) -> int:
    """The largest divisor of the batch whose rows fit CHUNK_ROWS; the whole batch if one sample does not."""
    fitting = [d for d in range(1, batch + 1) if batch % d == 0 and d * rows_per_sample <= CHUNK_ROWS]
    return max(fitting) if fitting else batch


def _weight_gradient_over_chunks(x, dy, kernel, padding, chunk):
    """Sum over batch chunks of each chunk's weight gradient, accumulated in float32."""
    total = None
    for start in range(0, x.shape[0], chunk):
        part = _whole_weight_gradient(x[start:start + chunk], dy[start:start + chunk], kernel, padding)
        total = part.astype(jnp.float32) if total is None else total + part.astype(jnp.float32)
    return total.astype(kernel.dtype)


def _whole_weight_gradient(x, dy, kernel, padding):
    return jax.linear_transpose(lambda w: conv2d(x, w, padding), kernel)(dy)[0]


def _weight_gradient_from_views(x, dy, kernel, padding):
    """One float32 matmul over the batch's rows: the kernel's taps as shifted views of whichever
    of x and dy has fewer channels (the views copy it kh x kw times), against the other."""
    kh, kw, in_channels, out_channels = kernel.shape
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    if in_channels <= out_channels:
        oh, ow = dy.shape[1:3]
        x_views = jnp.concatenate([x[:, i:i + oh, j:j + ow] for i in range(kh) for j in range(kw)], axis=-1)
        return _rows_product(x_views, dy).reshape(kernel.shape).astype(kernel.dtype)
    # dy shifted by (i, j) within x's padded size: tap (i, j) reads x at (h + i, w + j).
    dy_views = jnp.concatenate([jnp.pad(dy, ((0, 0), (i, kh - 1 - i), (j, kw - 1 - j), (0, 0)))
                                for i in range(kh) for j in range(kw)], axis=-1)
    grad = _rows_product(x, dy_views).reshape(in_channels, kh, kw, out_channels)
    return grad.transpose(1, 2, 0, 3).astype(kernel.dtype)


def _rows_product(a, b):
    """a^T b over all but the channel axis, in float32."""
    return lax.dot_general(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]), (((0,), (0,)), ((), ())),
                           preferred_element_type=jnp.float32)


_tuned_conv.defvjp(_forward, _backward)
