"""Pure-jnp FIR resampling and resampled convolution, NHWC.

Semantics (padding arithmetic, filter gain, which side of the signal the
zero-insertion pads) follow the official upfirdn2d / conv2d_resample ops, so
that weights trained by either implementation line up pixel for pixel.  No
custom kernels: XLA fuses the separable filter passes with their neighbours.
"""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

DEFAULT_FILTER = (1.0, 3.0, 3.0, 1.0)
_NHWC = ("NHWC", "HWIO", "NHWC")


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
    taps = f[::-1]
    count = (x.shape[axis] - taps.size) // down + 1
    out = None
    for i, tap in enumerate(taps):
        part = lax.slice_in_dim(x, i, i + (count - 1) * down + 1, stride=down, axis=axis)
        part = part * jnp.asarray(tap, x.dtype)
        out = part if out is None else out + part
    return out


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


def _conv(x, w, strides=(1, 1), padding=((0, 0), (0, 0)), groups=1):
    return lax.conv_general_dilated(
        x, w, window_strides=strides, padding=padding,
        dimension_numbers=_NHWC, feature_group_count=groups)


def conv2d_resample(x: jnp.ndarray, w: jnp.ndarray, f: np.ndarray | None = None,
                    up: int = 1, down: int = 1, padding: int = 0, groups: int = 1) -> jnp.ndarray:
    """Convolution (cross-correlation, HWIO weight) with FIR up- or downsampling.

    Upsampling is a transposed convolution (a true convolution over the
    zero-inserted input) followed by the FIR filter; downsampling filters
    first and then runs a strided convolution.  Both are the official order.
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
        return _conv(x, w, groups=groups)
    if down > 1:
        x = upfirdn2d(x, f, padding=(p0, p1))
        return _conv(x, w, strides=(down, down), groups=groups)
    if up > 1:
        p0 -= kw - 1
        p1 -= kw - up
        pt = max(min(-p0, -p1), 0)
        full = kw - 1 - pt
        zeros = jnp.zeros((), x.dtype)
        x = lax.pad(x, zeros, [(0, 0, 0), (full, full, up - 1), (full, full, up - 1), (0, 0, 0)])
        x = _conv(x, w[::-1, ::-1], groups=groups)
        return upfirdn2d(x, f, padding=(p0 + pt, p1 + pt), gain=up * up)
    return _conv(x, w, padding=((p0, p1), (p0, p1)), groups=groups)
