"""Slow, loop-based numpy references written for the tests (independent of stylejax's ops)."""

import numpy as np


def assert_close(actual, expected: np.ndarray, rtol: float = 1e-5) -> None:
    """Max error relative to the largest expected magnitude: summation order moves each element."""
    actual = np.asarray(actual, np.float64)
    assert actual.shape == expected.shape
    err = np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-12)
    assert err < rtol, err


def filter2d(taps=(1, 3, 3, 1)) -> np.ndarray:
    f = np.outer(taps, taps).astype(np.float64)
    return f / f.sum()


def correlate(x: np.ndarray, w: np.ndarray, stride: int = 1) -> np.ndarray:
    """Valid cross-correlation; x [H,W,I], w [kh,kw,I,O]."""
    kh, kw = w.shape[:2]
    ho = (x.shape[0] - kh) // stride + 1
    wo = (x.shape[1] - kw) // stride + 1
    out = np.zeros((ho, wo, w.shape[3]))
    for i in range(ho):
        for j in range(wo):
            patch = x[i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[i, j] = np.einsum("abi,abio->o", patch, w)
    return out


def pad_or_crop(x: np.ndarray, p0: int, p1: int) -> np.ndarray:
    x = np.pad(x, ((max(p0, 0), max(p1, 0)), (max(p0, 0), max(p1, 0)), (0, 0)))
    h, w = x.shape[:2]
    return x[max(-p0, 0):h - max(-p1, 0), max(-p0, 0):w - max(-p1, 0)]


def upfirdn2d(x: np.ndarray, f2d: np.ndarray, up=1, down=1, pad=(0, 0), gain=1.0) -> np.ndarray:
    """x [H,W,C]: insert up-1 zeros after each sample, pad, true-convolve with f2d, keep every down-th."""
    h, w, c = x.shape
    z = np.zeros((h * up, w * up, c))
    z[::up, ::up] = x
    z = pad_or_crop(z, *pad)
    flipped = f2d[::-1, ::-1] * gain
    out = np.zeros((z.shape[0] - f2d.shape[0] + 1, z.shape[1] - f2d.shape[1] + 1, c))
    for ch in range(c):
        out[..., ch] = correlate(z[..., ch:ch + 1], flipped[..., None, None])[..., 0]
    return out[::down, ::down]


def transposed_conv(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Scatter form: out[s*i + a, s*j + b] += x[i, j] @ w[a, b]."""
    h, wd, _ = x.shape
    k = w.shape[0]
    out = np.zeros(((h - 1) * stride + k, (wd - 1) * stride + k, w.shape[3]))
    for i in range(h):
        for j in range(wd):
            out[stride * i:stride * i + k, stride * j:stride * j + k] += np.einsum(
                "c,abco->abo", x[i, j], w)
    return out


def conv_up2(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The official 3x3 up-2 layer: transposed conv stride 2, then [1,3,3,1] FIR, gain 4."""
    return upfirdn2d(transposed_conv(x, w, 2), filter2d(), pad=(1, 1), gain=4.0)


def modulated_conv(x, weight, styles, demodulate=True, up=1):
    """Per-sample loop with explicitly modulated weights; x [N,H,W,I], weight [k,k,I,O]."""
    x, weight, styles = (np.asarray(a, np.float64) for a in (x, weight, styles))
    k = weight.shape[0]
    outs = []
    for n in range(x.shape[0]):
        wn = weight * styles[n][None, None, :, None]
        if demodulate:
            wn = wn / np.sqrt(np.sum(wn ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
        if up == 1:
            p = k // 2
            outs.append(correlate(np.pad(x[n], ((p, p), (p, p), (0, 0))), wn))
        else:
            outs.append(conv_up2(x[n], wn))
    return np.stack(outs)
