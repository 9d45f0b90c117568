"""The stride-1 convolution with a chunked or matmul weight gradient, against loop-based numpy
gradients."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax.models import conv
from stylejax.models.conv import NHWC, conv2d, samples_per_chunk
from tests.reference import assert_close

RNG = np.random.default_rng(0)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reference_gradients(x, w, padding, cotangent):
    """d/dx and d/dw of sum(cotangent * correlate(pad(x), w)), by explicit sums over kernel taps."""
    (t, b), (left, right) = padding
    kh, kw = w.shape[:2]
    x_padded = np.pad(x.astype(np.float64), ((0, 0), (t, b), (left, right), (0, 0)))
    oh, ow = cotangent.shape[1:3]
    dw = np.zeros(w.shape)
    dx_padded = np.zeros(x_padded.shape)
    for i in range(kh):
        for j in range(kw):
            window = x_padded[:, i:i + oh, j:j + ow]
            dw[i, j] = np.einsum("nhwi,nhwo->io", window, cotangent)
            dx_padded[:, i:i + oh, j:j + ow] += np.einsum("nhwo,io->nhwi", cotangent, w[i, j])
    dx = dx_padded[:, t:t + x.shape[1], left:left + x.shape[2]]
    return dx, dw


def gradients(x, w, padding, cotangent):
    return jax.jit(jax.grad(lambda x, w: jnp.sum(conv2d(x, w, padding) * cotangent), (0, 1)))(x, w)


def test_samples_per_chunk_is_the_largest_divisor_that_fits():
    assert conv.CHUNK_ROWS == 2048
    assert samples_per_chunk(32, 32 * 32) == 2
    assert samples_per_chunk(32, 16 * 16) == 8
    assert samples_per_chunk(32, 4 * 4) == 32
    assert samples_per_chunk(12, 200) == 6  # 10 would fit, but does not divide 12
    assert samples_per_chunk(7, 400) == 1
    assert samples_per_chunk(8, 64 * 64) == 8  # one sample is already past the limit: no split


@pytest.mark.parametrize("kernel,padding", [
    (3, ((1, 1), (1, 1))),   # 'same', the networks' 3x3 layers
    (2, ((0, 1), (0, 1))),   # 2x2 padded to kernel - 1 on the far side, as the CPU widens it
    (1, ((0, 0), (0, 0))),   # toRGB / fromRGB / skip
    (3, ((0, 2), (2, 0))),   # asymmetric
    (2, ((1, 1), (1, 1))),   # over-padded, the up-conv's phase kernel
    (2, ((0, 0), (0, 0))),   # under-padded: the space-to-depth conv, the up-conv's input gradient
    (3, ((1, 0), (0, 0))),   # under-padded, both axes, asymmetric
])
@pytest.mark.parametrize("in_channels,out_channels", [(3, 4), (4, 3)])  # views of x / of dy
def test_gradients_match_the_reference(kernel, padding, in_channels, out_channels):
    """5 samples of 24x24 rows: for 3x3 kernels, chunks of one sample (576 rows; 3 would fit, but
    do not divide 5); for at most 2x2 taps, one matmul over shifted views."""
    x = RNG.standard_normal((5, 24, 24, in_channels)).astype(np.float32)
    w = RNG.standard_normal((kernel, kernel, in_channels, out_channels)).astype(np.float32)
    out = conv2d(jnp.asarray(x), jnp.asarray(w), padding)
    cotangent = RNG.standard_normal(out.shape)
    assert samples_per_chunk(5, out.shape[1] * out.shape[2]) == 1
    dx, dw = gradients(jnp.asarray(x), jnp.asarray(w), padding, jnp.asarray(cotangent, jnp.float32))
    expected_dx, expected_dw = reference_gradients(x, w, padding, cotangent)
    assert_close(dx, expected_dx)
    assert_close(dw, expected_dw)


@pytest.mark.parametrize("kernel,padding,in_channels,out_channels", [
    (3, ((1, 1), (1, 1)), 3, 5), (2, ((1, 1), (1, 1)), 3, 5),
    (2, ((0, 0), (0, 0)), 3, 5), (2, ((0, 0), (0, 0)), 5, 3), (1, ((0, 0), (0, 0)), 5, 3)])
def test_second_derivatives_match_xla_conv(kernel, padding, in_channels, out_channels):
    """R1 and path length differentiate the input gradient in the weights: the mirrored conv in
    the backward pass (and, with views, the forward conv routed through conv2d again) must give
    lax's own second derivatives."""
    x = jnp.asarray(RNG.standard_normal((8, 24, 24, in_channels)), jnp.float32)
    w = jnp.asarray(RNG.standard_normal((kernel, kernel, in_channels, out_channels)) * 0.3, jnp.float32)

    def lax_conv(x, w, padding):
        return jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=NHWC)

    def r1_like(conv_fn, x, w):
        grad_x = jax.grad(lambda x: jnp.sum(jnp.tanh(conv_fn(x, w, padding))))(x)
        return jnp.sum(jnp.square(grad_x))

    assert samples_per_chunk(8, 24 * 24) == 2
    got = jax.jit(jax.grad(lambda x, w: r1_like(conv2d, x, w), (0, 1)))(x, w)
    expected = jax.jit(jax.grad(lambda x, w: r1_like(lax_conv, x, w), (0, 1)))(x, w)
    for g, e in zip(got, expected, strict=True):
        assert_close(g, np.asarray(e, np.float64), 1e-4)


def test_out_of_range_padding_is_xla_conv_and_still_correct():
    """A padding past kernel - 1 (or a crop) cannot mirror into a valid input-gradient conv."""
    x = RNG.standard_normal((2, 6, 6, 2)).astype(np.float32)
    w = RNG.standard_normal((3, 3, 2, 3)).astype(np.float32)
    padding = ((3, 0), (0, 3))
    out = conv2d(jnp.asarray(x), jnp.asarray(w), padding)
    cotangent = RNG.standard_normal(out.shape)
    dx, dw = gradients(jnp.asarray(x), jnp.asarray(w), padding, jnp.asarray(cotangent, jnp.float32))
    expected_dx, expected_dw = reference_gradients(x, w, padding, cotangent)
    assert_close(dx, expected_dx)
    assert_close(dw, expected_dw)


def test_only_the_cpu_lowering_splits_the_weight_gradient():
    """Other backends keep one weight-gradient conv: their conv libraries want the whole batch."""
    x = jax.ShapeDtypeStruct((8, 32, 32, 4), jnp.float32)
    w = jax.ShapeDtypeStruct((3, 3, 4, 4), jnp.float32)
    weight_gradient = jax.jit(jax.grad(lambda x, w: jnp.sum(conv2d(x, w, ((1, 1), (1, 1)))), 1))
    assert samples_per_chunk(8, 32 * 32) == 2
    for platform, convolutions in (("cpu", 4), ("cuda", 1)):
        module = jax.export.export(weight_gradient, platforms=[platform])(x, w).mlir_module()
        assert module.count("stablehlo.convolution") == convolutions, platform


@pytest.mark.parametrize("kernel,padding,in_channels,out_channels", [
    (2, ((1, 1), (1, 1)), 4, 8),  # over-padded: XLA CPU's weight-gradient conv ran at 1% of the peak
    (2, ((0, 0), (0, 0)), 8, 4),  # the space-to-depth conv: 1.9x faster than chunks
    (1, ((0, 0), (0, 0)), 4, 8),  # 1x1: 2x faster than chunks
])
def test_a_weight_gradient_over_views_is_one_matmul_on_cpu_only(kernel, padding, in_channels,
                                                                 out_channels):
    """On CPU one dot over the kernel's shifted views, elsewhere XLA's conv."""
    x = jax.ShapeDtypeStruct((8, 16, 16, in_channels), jnp.float32)
    w = jax.ShapeDtypeStruct((kernel, kernel, in_channels, out_channels), jnp.float32)
    weight_gradient = jax.jit(jax.grad(lambda x, w: jnp.sum(conv2d(x, w, padding)), 1))
    for platform, convolutions, dots in (("cpu", 0, 1), ("cuda", 1, 0)):
        module = jax.export.export(weight_gradient, platforms=[platform])(x, w).mlir_module()
        assert module.count("stablehlo.convolution") == convolutions, platform
        assert module.count("stablehlo.dot_general") == dots, platform


def test_an_under_padded_conv_is_widened_and_cropped_on_cpu_only():
    """XLA CPU ran a conv that shrinks its input (a 2x2 kernel, unpadded) at a third of the speed
    of the same conv padded to kernel - 1; on CPU it is padded on the far side and cropped."""
    x = jax.ShapeDtypeStruct((8, 17, 17, 4), jnp.float32)
    w = jax.ShapeDtypeStruct((2, 2, 4, 4), jnp.float32)
    forward = jax.jit(lambda x, w: conv2d(x, w, ((0, 0), (0, 0))))
    for platform, conv_output in (("cpu", "8x17x17x4"), ("cuda", "8x16x16x4")):
        module = jax.export.export(forward, platforms=[platform])(x, w).mlir_module()
        convolutions = [line for line in module.splitlines() if "stablehlo.convolution" in line]
        assert len(convolutions) == 1, platform
        assert f"-> tensor<{conv_output}xf32>" in convolutions[0], platform
    assert forward(jnp.zeros(x.shape), jnp.zeros(w.shape)).shape == (8, 16, 16, 4)


CHUNKS_ON_DEVICES = """
import sys
import jax, jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from stylejax.models.conv import NHWC, conv2d
mesh = Mesh(jax.devices(), ("data",))
k = int(sys.argv[1])
padding = ((1, 1), (1, 1))
x = jax.random.normal(jax.random.key(0), (16, 32, 32, 4))
w = jax.random.normal(jax.random.key(1), (k, k, 4, 4))
lax_conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=NHWC)
expected = jax.grad(lambda w: jnp.sum(lax_conv(x, w) ** 2))(w)
x = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
grad = jax.jit(jax.grad(lambda x, w: jnp.sum(conv2d(x, w, padding) ** 2), 1))
program = grad.lower(x, w).compile().as_text()
error = float(jnp.max(jnp.abs(grad(x, w) - expected)) / jnp.max(jnp.abs(expected)))
print(program.count("collective-permute"), program.count(" convolution("), error < 1e-5)
"""


@pytest.mark.parametrize("devices,kernel,convolutions", [
    (1, 3, 9), (8, 3, 2),  # the forward conv plus 8 chunks on one device, XLA's one on several
    (1, 2, 1), (8, 2, 1),  # over-padded: the forward conv; the weight gradient is a matmul
])
def test_a_batch_split_over_devices_is_not_sliced_across_them(devices, kernel, convolutions):
    """Chunks of a data-parallel batch would move samples between devices: several devices
    keep XLA's one weight-gradient conv for a 3x3 'same' conv. The over-padded conv's matmul
    over shifted views slices no batch, so it serves any number of devices."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO}
    out = subprocess.run([sys.executable, "-c", CHUNKS_ON_DEVICES, str(kernel)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["0", str(convolutions), "True"]
