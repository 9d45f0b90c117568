"""FIR resampling and resampled convolutions against loop-based numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax.models.conv import conv2d
from stylejax.models.resample import (
    conv2d_resample,
    downsample2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)
from stylejax.ops.cpu_conv import CpuConv2d
from tests import reference as ref
from tests.reference import assert_close

RNG = np.random.default_rng(0)
STRIDE1_CONVS = {"reference": conv2d, "tuned": CpuConv2d(devices=1)}


def test_filter_is_normalised_outer_product():
    f = setup_filter()
    np.testing.assert_allclose(np.outer(f, f), ref.filter2d(), rtol=1e-7)
    assert abs(np.outer(f, f).sum() - 1) < 1e-6


@pytest.mark.parametrize("up,down,pad,gain", [
    (1, 1, (0, 0), 1.0), (2, 1, (2, 1), 4.0), (1, 2, (1, 1), 1.0), (1, 1, (2, -1), 2.0),
    (2, 1, (1, 1), 4.0), (1, 2, (2, 2), 1.0)])
def test_upfirdn2d_matches_reference(up, down, pad, gain):
    x = RNG.standard_normal((2, 6, 6, 3)).astype(np.float32)
    got = upfirdn2d(jnp.asarray(x), setup_filter(), up=up, down=down, padding=pad, gain=gain)
    want = np.stack([ref.upfirdn2d(x[n], ref.filter2d(), up, down, pad, gain) for n in range(2)])
    assert_close(got, want)


def _matrix(linear, shape):
    """The matrix of a linear map of arrays of `shape`, one basis array per column."""
    basis = np.eye(int(np.prod(shape))).reshape(-1, *shape)
    return np.stack([linear(b).ravel() for b in basis], axis=1)


@pytest.mark.parametrize("up,down,pad,taps", [
    (1, 1, (0, 0), (1, 2, 4)), (2, 1, (2, 1), (1, 3, 3, 1)), (1, 2, (1, 1), (1, 3, 3, 1)),
    (1, 2, (2, 2), (1, 2, 4)), (1, 2, (2, 1), (1, 2, 4)), (1, 3, (1, 0), (1, 5, 2, 1)),
    (1, 1, (2, -1), (1, 2, 4))])
def test_upfirdn2d_first_and_second_derivatives_match_its_matrix(up, down, pad, taps):
    """upfirdn2d is linear, so the reference applied to each basis image gives its matrix M:
    grad sum(sin(Mx)) = M^T cos(Mx), and differentiating sum(sin(that)) once more gives
    M^T (-sin(Mx) * M cos(M^T cos(Mx))). Asymmetric taps catch a mirrored filter."""
    shape = (5, 6, 2)
    m = _matrix(lambda b: ref.upfirdn2d(b, ref.filter2d(taps), up, down, pad), shape)
    x = RNG.standard_normal(shape)

    def linear(x):
        return upfirdn2d(x[None], setup_filter(taps), up=up, down=down, padding=pad)

    def first(x):
        return jax.grad(lambda x: jnp.sum(jnp.sin(linear(x))))(x)

    u = m @ x.ravel()
    x32 = jnp.asarray(x, jnp.float32)
    assert_close(np.ravel(first(x32)), m.T @ np.cos(u), 1e-5)
    second = jax.grad(lambda x: jnp.sum(jnp.sin(first(x))))(x32)
    assert_close(np.ravel(second), m.T @ (-np.sin(u) * (m @ np.cos(m.T @ np.cos(u)))), 1e-5)


def test_upsample_and_downsample_shapes_and_dc_gain():
    x = jnp.ones((1, 8, 8, 2))
    up = upsample2d(x, setup_filter())
    down = downsample2d(x, setup_filter())
    assert up.shape == (1, 16, 16, 2) and down.shape == (1, 4, 4, 2)
    # Away from the zero-padded border a constant image stays constant.
    np.testing.assert_allclose(up[0, 2:-2, 2:-2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(down[0, 1:-1, 1:-1], 1.0, rtol=1e-6)


def test_conv_up2_matches_transposed_conv_reference():
    x = RNG.standard_normal((1, 5, 5, 3)).astype(np.float32)
    w = RNG.standard_normal((3, 3, 3, 4)).astype(np.float32)
    got = conv2d_resample(jnp.asarray(x), jnp.asarray(w), setup_filter(), up=2, padding=1)
    assert_close(got, ref.conv_up2(x[0], w)[None])


@pytest.mark.parametrize("impl", STRIDE1_CONVS)
@pytest.mark.parametrize("k,up,taps,padding", [
    (3, 2, (1, 3, 3, 1), 0), (1, 2, (1, 3, 3, 1), 0), (5, 2, (1, 3, 3, 1), 2), (2, 2, (1, 2, 1), 1),
    (3, 3, (1, 2, 1), 1), (3, 3, (1, 1), 0), (4, 3, (1, 3, 3, 1), 2)])
def test_conv_up_matches_transposed_conv_then_filter(k, up, taps, padding, impl):
    """The polyphase kernel for any kernel size, factor, filter and padding: the official
    order (transposed conv, then the FIR over its output with gain up^2)."""
    x = RNG.standard_normal((1, 5, 5, 3)).astype(np.float32)
    w = RNG.standard_normal((k, k, 3, 4)).astype(np.float32)
    got = conv2d_resample(jnp.asarray(x), jnp.asarray(w), setup_filter(taps), up=up, padding=padding,
                          stride1_conv=STRIDE1_CONVS[impl])
    fw = len(taps)
    pad = (padding + (fw + up - 1) // 2 - (k - 1), padding + (fw - up) // 2 - (k - up))
    want = ref.upfirdn2d(ref.transposed_conv(x[0], w, up), ref.filter2d(taps), pad=pad, gain=up * up)
    assert_close(got, want[None])


@pytest.mark.parametrize("k", [3, 1])
def test_conv_down2_matches_filter_then_strided_reference(k):
    x = RNG.standard_normal((1, 8, 8, 3)).astype(np.float32)
    w = RNG.standard_normal((k, k, 3, 4)).astype(np.float32)
    got = conv2d_resample(jnp.asarray(x), jnp.asarray(w), setup_filter(), down=2, padding=k // 2)
    if k == 3:  # filter with padding 2, then a stride-2 valid correlation
        want = ref.correlate(ref.upfirdn2d(x[0], ref.filter2d(), pad=(2, 2)), w, stride=2)
    else:  # 1x1: filter-downsample with padding 1, then the 1x1 conv
        want = ref.correlate(ref.upfirdn2d(x[0], ref.filter2d(), down=2, pad=(1, 1)), w)
    assert want.shape == (4, 4, 4)
    assert_close(got, want[None])


@pytest.mark.parametrize("impl", STRIDE1_CONVS)
@pytest.mark.parametrize("k,down,size", [(3, 2, 9), (3, 2, 6), (4, 2, 7), (5, 2, 8), (3, 3, 10), (2, 3, 7)])
def test_conv_down_over_blocks_matches_strided_reference(k, down, size, impl):
    """Any kernel size, factor and (odd or even) size: the space-to-depth form, plus its first
    and second derivatives (R1 differentiates the input gradient) against lax's strided conv."""
    x = RNG.standard_normal((2, size, size, 3)).astype(np.float32)
    w = RNG.standard_normal((k, k, 3, 4)).astype(np.float32)
    stride1_conv = STRIDE1_CONVS[impl]
    got = conv2d_resample(jnp.asarray(x), jnp.asarray(w), setup_filter(), down=down, padding=1,
                          stride1_conv=stride1_conv)
    p0, p1 = 1 + (4 - down + 1) // 2, 1 + (4 - down) // 2
    filtered = ref.upfirdn2d(x[0], ref.filter2d(), pad=(p0, p1))
    assert_close(got[0], ref.correlate(filtered, w, stride=down))

    def strided(x, w):
        x = upfirdn2d(x, setup_filter(), padding=(p0, p1))
        return jax.lax.conv_general_dilated(x, w, (down, down), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def r1_like(conv, w):
        grad_x = jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, w))))(jnp.asarray(x))
        return jnp.sum(jnp.square(grad_x))

    def blocks(x, w):
        return conv2d_resample(x, w, setup_filter(), down=down, padding=1, stride1_conv=stride1_conv)

    assert_close(jax.grad(r1_like, argnums=1)(blocks, jnp.asarray(w)),
                 np.asarray(jax.grad(r1_like, argnums=1)(strided, jnp.asarray(w)), np.float64), 1e-4)


def test_plain_conv_is_same_padded_correlation():
    x = RNG.standard_normal((1, 6, 6, 2)).astype(np.float32)
    w = RNG.standard_normal((3, 3, 2, 5)).astype(np.float32)
    got = conv2d_resample(jnp.asarray(x), jnp.asarray(w), padding=1)
    assert_close(got, ref.correlate(np.pad(x[0], ((1, 1), (1, 1), (0, 0))), w)[None])


def test_bad_filter_and_arguments_are_refused():
    with pytest.raises(ValueError, match="non-zero sum"):
        setup_filter([])
    with pytest.raises(ValueError, match="filter is required"):
        conv2d_resample(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1)), None, up=2)
