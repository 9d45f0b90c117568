"""Stride-1 convolution whose weight gradient XLA CPU runs near matmul speed.

XLA CPU's weight-gradient convolution slows down sharply when its reduction
over batch x output pixels grows past a few thousand rows: a 32x32, 128-channel
layer at batch 32 ran at 40% of the matmul peak, the same work as 16 two-sample
convolutions summed at 65% (benchmarks/bench_conv.py, RESULTS.md). So on CPU the
weight gradient is a sum over batch chunks of at most CHUNK_ROWS rows; other
backends keep XLA's own gradient. The input gradient is this same convolution
again (flipped kernel, mirrored padding), so in the double gradients of R1 and
path length its weight gradient is chunked too. The forward rule keeps lax's
conv: routing it through this one as well chunks the remaining second-order
term, but it cost 44 more convolutions in the R1 program to compile for 0.2% of
an iteration (RESULTS.md).

Two kinds of conv take a weight gradient of one matmul over the kernel's shifted
views instead, on CPU: a conv padded past kernel - 1 in total (the up-conv's 2x2
phase kernel, padded 1 on each side), whose weight-gradient conv XLA CPU runs at
1% of the peak, and a kernel of at most 2x2 taps (the discriminator's
space-to-depth conv; the 1x1 toRGB, fromRGB and skip), where the views copy the operand
with fewer channels at most 4 times and the matmul ran 1.9x (2x2) and 2x (1x1)
faster than the chunks. Their forward rule is this conv again, so that second
derivatives take the same matmul. A conv padded less than kernel - 1 in total
(the up-conv's input gradient and the space-to-depth conv, 2x2 and unpadded)
ran at a third of the speed of the same conv padded to kernel - 1: on CPU its
forward is padded on the far side and cropped, inside this conv, so that the
gradients see the true padding.

Only a process with one device chunks. With several, the batch is split over
them, and slicing it into chunks moved samples between devices (200-480
collective-permutes per train phase on 8 CPU devices). The views' matmul slices
no batch, so it serves any number of devices.
"""

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

CHUNK_ROWS = 2048
NHWC = ("NHWC", "HWIO", "NHWC")

Padding = tuple[tuple[int, int], tuple[int, int]]


def conv2d(x: jnp.ndarray, w: jnp.ndarray, padding: Padding) -> jnp.ndarray:
    """Stride-1 cross-correlation, NHWC input, HWIO kernel, (before, after) padding per axis."""
    padding = tuple((int(p0), int(p1)) for p0, p1 in padding)
    if all(0 <= p <= k - 1 for (p0, p1), k in zip(padding, w.shape[:2], strict=True) for p in (p0, p1)):
        return _conv_fast_weight_gradient(x, w, padding)
    return _lax_conv(x, w, padding)  # a cropping or over-padded conv: XLA's gradient


def samples_per_chunk(batch: int, rows_per_sample: int) -> int:
    """The largest divisor of the batch whose rows fit CHUNK_ROWS; the whole batch if one sample does not."""
    fitting = [d for d in range(1, batch + 1) if batch % d == 0 and d * rows_per_sample <= CHUNK_ROWS]
    return max(fitting) if fitting else batch


def _conv_in_library_padding(x, w, padding):
    """On CPU, a conv padded less than kernel - 1 in total, one that shrinks its input (the
    up-conv's input gradient and the space-to-depth conv: 2x2, unpadded), runs as the conv padded
    on the far side up to kernel - 1, cropped: XLA CPU ran the unpadded conv at a third of the
    padded one's speed."""
    widened = tuple((p0, max(p1, k - 1 - p0)) for (p0, p1), k in zip(padding, w.shape[:2], strict=True))
    if widened == padding:
        return _lax_conv(x, w, padding)
    out_h, out_w = (n + p0 + p1 - k + 1 for n, (p0, p1), k in zip(x.shape[1:3], padding, w.shape[:2],
                                                                     strict=True))

    def widened_then_cropped(x, w):
        return _lax_conv(x, w, widened)[:, :out_h, :out_w]
    return lax.platform_dependent(x, w, cpu=widened_then_cropped,
                                  default=lambda x, w: _lax_conv(x, w, padding))


def _lax_conv(x, w, padding):
    return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=NHWC)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_fast_weight_gradient(x, w, padding):
    return _conv_in_library_padding(x, w, padding)


def _forward(x, w, padding):
    if _weight_gradient_over_views(w, padding):  # second derivatives take the views too
        return _conv_fast_weight_gradient(x, w, padding), (x, w)
    return _conv_in_library_padding(x, w, padding), (x, w)


def _weight_gradient_over_views(w, padding) -> bool:
    """Padded past kernel - 1 in total (XLA CPU's weight-gradient conv then leaves its fast
    library), or at most 2x2 taps (the views are small): see the module docstring."""
    over_padded = any(p0 + p1 > k - 1 for (p0, p1), k in zip(padding, w.shape[:2], strict=True))
    return over_padded or w.shape[0] * w.shape[1] <= 4


def _backward(padding, residuals, dy):
    x, w = residuals
    mirrored = tuple((k - 1 - p0, k - 1 - p1) for (p0, p1), k in zip(padding, w.shape[:2], strict=True))
    dx = _conv_fast_weight_gradient(dy, jnp.swapaxes(w[::-1, ::-1], 2, 3), mirrored)
    kernel = jax.ShapeDtypeStruct(w.shape, w.dtype)
    weight_gradient = partial(_weight_gradient, kernel=kernel, padding=padding)
    whole = partial(weight_gradient, chunk=x.shape[0])
    if _weight_gradient_over_views(w, padding):
        views = partial(_weight_gradient_from_views, kernel=kernel, padding=padding)
        return dx, lax.platform_dependent(x, dy, cpu=views, default=whole)
    chunk = samples_per_chunk(x.shape[0], dy.shape[1] * dy.shape[2])
    if jax.device_count() > 1 or chunk == x.shape[0]:
        return dx, whole(x, dy)
    return dx, lax.platform_dependent(x, dy, cpu=partial(weight_gradient, chunk=chunk), default=whole)


def _weight_gradient(x, dy, *, kernel, padding, chunk):
    """Sum over batch chunks of each chunk's weight gradient, accumulated in float32."""
    total = None
    for start in range(0, x.shape[0], chunk):
        part = _whole_weight_gradient(x[start:start + chunk], dy[start:start + chunk], kernel, padding)
        total = part.astype(jnp.float32) if total is None else total + part.astype(jnp.float32)
    return total.astype(kernel.dtype)


def _weight_gradient_from_views(x, dy, *, kernel, padding):
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


def _whole_weight_gradient(x, dy, kernel, padding):
    return jax.linear_transpose(lambda w: _lax_conv(x, w, padding), kernel)(dy)[0]


_conv_fast_weight_gradient.defvjp(_forward, _backward)
