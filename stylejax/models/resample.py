"""Pure-jnp FIR resampling and resampled convolution, NHWC.

Semantics (padding arithmetic, filter gain, which side of the signal the
zero-insertion pads) follow the official upfirdn2d / conv2d_resample ops, so
that weights trained by either implementation line up pixel for pixel.  No
custom kernels: XLA fuses the separable filter passes with their neighbours.
"""

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from stylejax.models.conv import NHWC, Conv2d, conv2d

DEFAULT_FILTER = (1.0, 3.0, 3.0, 1.0)


def setup_filter(taps: Sequence[float] = DEFAULT_FILTER) -> np.ndarray:
    """1-D taps whose outer product is the official normalised 2-D filter."""
    taps = np.asarray(taps, dtype=np.float64)
    if taps.ndim != 1 or taps.size == 0 or taps.sum() == 0:
        raise ValueError(f"resample filter must be a non-empty 1-D list with non-zero sum, got {taps}")
    return (taps / taps.sum()).astype(np.float32)


def _filter_axis(x: jnp.ndarray, f: np.ndarray, axis: int, down: int) -> jnp.ndarray:
    """True convolution with the taps along one axis ('valid'), keeping every down-th output.

    Written as a sum of shifted slices rather than a depthwise convolution:
    XLA fuses the slices into one elementwise loop, which on CPU is an order
    of magnitude faster than its grouped-convolution path.
    """
    taps = tuple(float(t) for t in f)
    count = (x.shape[axis] - len(taps)) // down + 1
    x = lax.slice_in_dim(x, 0, (count - 1) * down + len(taps), axis=axis)  # the samples read
    return _fir_pass(x, taps, axis, down)


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _fir_pass(x, taps, axis, down):
    """_filter_axis over an input whose every sample is read."""
    count = (x.shape[axis] - len(taps)) // down + 1
    out = None
    for i, tap in enumerate(reversed(taps)):
        part = lax.slice_in_dim(x, i, i + (count - 1) * down + 1, stride=down, axis=axis)
        part = part * jnp.asarray(tap, x.dtype)
        out = part if out is None else out + part
    return out


def _fir_pass_forward(x, taps, axis, down):
    return _fir_pass(x, taps, axis, down), None


def _fir_pass_backward(taps, axis, down, _, dy):
    """The same pass with mirrored taps over dy, zero-inserted and padded by taps - 1: one
    fused loop. Autodiff's transpose pads every slice to the input's size and adds them up,
    one buffer per tap, which made these passes 5% of D main (benchmarks/RESULTS.md)."""
    padding = [(0, 0, 0)] * dy.ndim
    padding[axis] = (len(taps) - 1, len(taps) - 1, down - 1)
    return (_fir_pass(lax.pad(dy, jnp.zeros((), dy.dtype), padding), taps[::-1], axis, 1),)


_fir_pass.defvjp(_fir_pass_forward, _fir_pass_backward)


def upfirdn2d(x: jnp.ndarray, f: np.ndarray, up: int = 1, down: int = 1,
              padding: tuple[int, int] = (0, 0), gain: float = 1.0) -> jnp.ndarray:
    """Upsample (zero insertion), pad or crop, separable FIR filter, downsample.

    `padding` is (before, after), the same on both spatial axes; negative
    values crop.  `gain` scales the 2-D filter (up**2 keeps the mean for up).
    """
    p0, p1 = padding
    cfg = [(0, 0, 0), (p0, p1 + up - 1, up - 1), (p0, p1 + up - 1, up - 1), (0, 0, 0)]
    x = lax.pad(x, jnp.zeros((), x.dtype), cfg)
    x = _filter_axis(x, f, axis=1, down=down)
    x = _filter_axis(x, f, axis=2, down=down)
    return x * jnp.asarray(gain, x.dtype) if gain != 1 else x


def upsample2d(x: jnp.ndarray, f: np.ndarray, up: int = 2) -> jnp.ndarray:
    """Image upsampling used by the skip generator's RGB path."""
    fw = f.size
    return upfirdn2d(x, f, up=up, padding=((fw + up - 1) // 2, (fw - up) // 2), gain=up * up)


def downsample2d(x: jnp.ndarray, f: np.ndarray, down: int = 2) -> jnp.ndarray:
    fw = f.size
    return upfirdn2d(x, f, down=down, padding=((fw - down + 1) // 2, (fw - down) // 2))


def _conv(x, w, stride1_conv, strides=(1, 1), padding=((0, 0), (0, 0)), groups=1):
    """`stride1_conv` for the stride-1 ungrouped convs, most of the networks' work; lax's own for
    the strided and the grouped ones."""
    if strides == (1, 1) and groups == 1:
        return stride1_conv(x, w, padding)
    return lax.conv_general_dilated(
        x, w, window_strides=strides, padding=padding,
        dimension_numbers=NHWC, feature_group_count=groups)


def conv2d_resample(x: jnp.ndarray, w: jnp.ndarray, f: np.ndarray | None = None,
                    up: int = 1, down: int = 1, padding: int = 0, groups: int = 1,
                    stride1_conv: Conv2d = conv2d) -> jnp.ndarray:
    """Convolution (cross-correlation, HWIO weight) with FIR up- or downsampling.

    Upsampling is a transposed convolution (a true convolution over the
    zero-inserted input, computed in polyphase form) followed by the FIR
    filter; downsampling filters first and then runs a strided convolution
    (over space-to-depth blocks). Both are the official order. `stride1_conv`
    runs every stride-1, ungrouped convolution (stylejax.models.conv).
    """
    if up > 1 and down > 1:
        raise ValueError("conv2d_resample: up and down together are not supported")
    kh, kw = int(w.shape[0]), int(w.shape[1])
    if kh != kw:
        raise ValueError(f"conv2d_resample: square kernels only, got {kh}x{kw}")
    p0 = p1 = padding
    if up > 1 or down > 1:
        if f is None:
            raise ValueError("conv2d_resample: a resample filter is required with up or down")
        fw = f.size
        if up > 1:
            p0 += (fw + up - 1) // 2
            p1 += (fw - up) // 2
        else:
            p0 += (fw - down + 1) // 2
            p1 += (fw - down) // 2

    if down > 1 and kw == 1:
        x = upfirdn2d(x, f, down=down, padding=(p0, p1))
        return _conv(x, w, stride1_conv, groups=groups)
    if down > 1:
        x = upfirdn2d(x, f, padding=(p0, p1))
        if groups == 1:
            return _conv_down_space_to_depth(x, w, down, stride1_conv)
        return _conv(x, w, stride1_conv, strides=(down, down), groups=groups)
    if up > 1:
        y = _conv_transpose_polyphase(x, w, up, groups, stride1_conv)
        return upfirdn2d(y, f, padding=(p0 - (kw - 1), p1 - (kw - up)), gain=up * up)
    return _conv(x, w, stride1_conv, padding=((p0, p1), (p0, p1)), groups=groups)


def _conv_down_space_to_depth(x, w, down, stride1_conv):
    """A 'valid' conv with stride `down`, as a stride-1 conv over space-to-depth blocks.

    Output o reads x[down*o + t], t < k; with t = down*e + r that is block o + e, phase r, so the
    k x k kernel, zero-padded to whole blocks, becomes a ceil(k/down)-square kernel over down^2
    times the channels: 16/9 the multiplies for 3x3, down 2.  But every derivative is a
    stride-1 conv: the strided conv's R1 double gradient fell back to a generic XLA CPU kernel
    (the R1 phase took twice as long).
    """
    n, size, _, in_channels = x.shape
    k, out_channels = int(w.shape[0]), int(w.shape[-1])
    taps = -(-k // down)
    out_len = (size - k) // down + 1
    blocks = -(-size // down)
    x = jnp.pad(x, ((0, 0), (0, blocks * down - size), (0, blocks * down - size), (0, 0)))
    x = x.reshape(n, blocks, down, blocks, down, in_channels).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(n, blocks, blocks, down * down * in_channels)
    w = jnp.pad(w, ((0, taps * down - k), (0, taps * down - k), (0, 0), (0, 0)))
    w = w.reshape(taps, down, taps, down, -1, out_channels).transpose(0, 2, 1, 3, 4, 5)
    w = w.reshape(taps, taps, -1, out_channels)
    return _conv(x, w, stride1_conv)[:, :out_len, :out_len]


def _phase_matrix(kernel_size: int, up: int) -> tuple[int, np.ndarray]:
    """Along one axis, the transposed conv's kernel taps per output phase, as a matrix.

    Output up*j + phase of the stride-up transposed conv is sum_e w[phase - up*e] * x[j + e].
    Returns the first e and M [e, phase, a], 1 where a = phase - up*e, so the polyphase kernel
    is a small contraction of the weights: no gather, whose XLA CPU loop took 10-18 ms per layer.
    """
    first = -((kernel_size - 1) // up)
    e = np.arange(first, 1)[:, None, None]
    a = np.arange(up)[None, :, None] - up * e
    return first, (a == np.arange(kernel_size)[None, None, :]).astype(np.float32)


def _conv_transpose_polyphase(x, w, up, groups, stride1_conv):
    """The full stride-up transposed conv, as one stride-1 conv at the input resolution.

    Split into its up*up output phases it is a conv of x with up*up times the output
    channels (a 2x2 kernel for 3x3 at up 2), followed by depth-to-space: 16/9 the multiplies
    of a zero-skipping transposed conv (the one-tap phases are padded to two taps), without
    zero insertion, whose conv fell back to a generic XLA CPU kernel 20x slower in the
    path-length double gradient.  The FIR filter runs after
    it (upfirdn2d), as in the official order.  Folding the FIR into the kernel instead makes a
    3x3 phase kernel, 2.25x the multiplies: that form's G main phase took 1.1x and its path
    length phase 1.25x as long (RESULTS.md).
    """
    kw = int(w.shape[0])
    h = x.shape[1]
    out_len = up * (h - 1) + kw
    first, m = _phase_matrix(kw, up)
    taps = m.shape[0]
    both_axes = jnp.asarray(np.einsum("ypa,xqb->yxpqab", m, m), w.dtype)
    k = jnp.einsum("yxpqab,abio->yxiopq", both_axes, w)
    in_channels, out_channels = k.shape[2:4]
    k = k.reshape(taps, taps, in_channels, out_channels * up * up)
    j = -(-out_len // up)
    pad = (-first, j - h + first + taps - 1)
    y = _conv(x, k, stride1_conv, padding=(pad, pad), groups=groups)
    n = y.shape[0]
    y = y.reshape(n, j, j, out_channels, up, up).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, j * up, j * up, out_channels)[:, :out_len, :out_len]
