"""The stride-1 convolutions the networks can run, the reference (lax's) and the CPU-tuned one,
against loop-based numpy sums and, for second derivatives, against each other; and which one
config.model.impl gives the networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax.configs import base_config
from stylejax.errors import ConfigError
from stylejax.models.conv import conv2d
from stylejax.networks import build_networks, resolve_impl
from stylejax.ops.cpu_conv import CpuConv2d
from stylejax.train.validate import validate_config
from tests.reference import assert_close

RNG = np.random.default_rng(0)
STRIDE1_CONVS = {
    "reference": conv2d,
    "tuned": CpuConv2d(devices=1),
    "tuned, batch split over devices": CpuConv2d(devices=2),
}
# (kernel, padding): each padding the networks use, and the edge cases of the tuned conv's rules
SHAPES = [
    (3, ((1, 1), (1, 1))),   # 'same', the networks' 3x3 layers
    (1, ((0, 0), (0, 0))),   # toRGB / fromRGB / skip
    (2, ((1, 1), (1, 1))),   # padded past kernel - 1 in total: the up-conv's phase kernel
    (2, ((0, 0), (0, 0))),   # under-padded: the space-to-depth conv, the up-conv's input gradient
    (2, ((0, 1), (0, 1))),   # 2x2 padded to kernel - 1 on the far side
    (3, ((0, 2), (2, 0))),   # asymmetric
    (3, ((1, 0), (0, 0))),   # under-padded, both axes, asymmetric
    (3, ((3, 0), (0, 3))),   # past kernel - 1 on one side
]


def reference_forward_and_gradients(x, w, padding, cotangent):
    """correlate(pad(x), w), and d/dx and d/dw of sum(cotangent * that), by explicit sums over
    the kernel's taps in float64."""
    (t, b), (left, right) = padding
    kh, kw = w.shape[:2]
    x_padded = np.pad(x.astype(np.float64), ((0, 0), (t, b), (left, right), (0, 0)))
    oh, ow = x_padded.shape[1] - kh + 1, x_padded.shape[2] - kw + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    dw = np.zeros(w.shape)
    dx_padded = np.zeros(x_padded.shape)
    for i in range(kh):
        for j in range(kw):
            window = x_padded[:, i:i + oh, j:j + ow]
            out += np.einsum("nhwi,io->nhwo", window, w[i, j])
            dw[i, j] = np.einsum("nhwi,nhwo->io", window, cotangent)
            dx_padded[:, i:i + oh, j:j + ow] += np.einsum("nhwo,io->nhwi", cotangent, w[i, j])
    return out, dx_padded[:, t:t + x.shape[1], left:left + x.shape[2]], dw


@pytest.mark.parametrize("impl", STRIDE1_CONVS)
@pytest.mark.parametrize("kernel,padding", SHAPES)
@pytest.mark.parametrize("in_channels,out_channels", [(3, 4), (4, 3)])
def test_forward_and_gradients_match_loop_sums(impl, kernel, padding, in_channels, out_channels):
    """8 samples of 24x24: enough rows that the tuned 3x3 weight gradient is a sum of chunks."""
    conv = STRIDE1_CONVS[impl]
    x = RNG.standard_normal((8, 24, 24, in_channels)).astype(np.float32)
    w = RNG.standard_normal((kernel, kernel, in_channels, out_channels)).astype(np.float32)
    out_shape = jax.eval_shape(lambda x, w: conv(x, w, padding), x, w).shape
    cotangent = RNG.standard_normal(out_shape)
    out, vjp = jax.vjp(jax.jit(lambda x, w: conv(x, w, padding)), jnp.asarray(x), jnp.asarray(w))
    dx, dw = vjp(jnp.asarray(cotangent, jnp.float32))
    expected_out, expected_dx, expected_dw = reference_forward_and_gradients(x, w, padding, cotangent)
    assert_close(out, expected_out)
    assert_close(dx, expected_dx)
    assert_close(dw, expected_dw)


@pytest.mark.parametrize("kernel,padding,in_channels,out_channels", [
    (3, ((1, 1), (1, 1)), 3, 5),  # 'same' 3x3
    (2, ((1, 1), (1, 1)), 3, 5),  # the up-conv's phase kernel
    (2, ((0, 0), (0, 0)), 3, 5),  # the space-to-depth conv, views of x...
    (2, ((0, 0), (0, 0)), 5, 3),  # ...and of dy
    (1, ((0, 0), (0, 0)), 5, 3),  # 1x1
])
@pytest.mark.parametrize("impl", ["tuned", "tuned, batch split over devices"])
def test_second_derivatives_equal_the_references(kernel, padding, in_channels, out_channels, impl):
    """R1 and path length differentiate the input gradient once more, in the input and the
    weights: the tuned conv's custom gradients must be differentiable to the same values."""
    x = jnp.asarray(RNG.standard_normal((8, 24, 24, in_channels)), jnp.float32)
    w = jnp.asarray(RNG.standard_normal((kernel, kernel, in_channels, out_channels)) * 0.3, jnp.float32)

    def r1_like(conv, x, w):
        grad_x = jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, w, padding))))(x)
        return jnp.sum(jnp.square(grad_x))

    def second_order(conv):
        return jax.jit(jax.grad(lambda x, w: r1_like(conv, x, w), (0, 1)))(x, w)

    for got, expected in zip(second_order(STRIDE1_CONVS[impl]), second_order(conv2d), strict=True):
        assert_close(got, np.asarray(expected, np.float64), 1e-4)


@pytest.mark.parametrize("impl,backend,resolved", [
    ("auto", "cpu", "tuned"), ("auto", "gpu", "reference"), ("auto", "tpu", "reference"),
    ("reference", "cpu", "reference"), ("tuned", "gpu", "tuned"),
])
def test_auto_is_the_tuned_convolution_on_the_cpu_backend_only(impl, backend, resolved):
    assert resolve_impl(impl, backend) == resolved


@pytest.mark.parametrize("impl,expected", [
    ("reference", conv2d), ("tuned", CpuConv2d(devices=jax.device_count())),
    ("auto", CpuConv2d(devices=jax.device_count()) if jax.default_backend() == "cpu" else conv2d),
])
def test_build_networks_gives_g_and_d_the_configured_convolution(impl, expected):
    config = base_config()
    config.model.impl = impl
    G, D = build_networks(config, 0, 3)
    assert G.stride1_conv == D.stride1_conv == expected


def test_an_unknown_impl_is_refused_naming_the_key_and_the_choices():
    config = base_config()
    config.model.impl = "fast"
    with pytest.raises(ConfigError, match=r"^config\.model\.impl='fast' is not one of reference, "
                                          r"tuned, auto$"):
        validate_config(config, num_devices=1)
