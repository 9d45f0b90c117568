"""The official G and D architectures beside the fixture's skip G / resnet D: parameter counts from
the official class structure, and invariants that tie each to a tested one."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from stylejax.models import Discriminator, Generator
from stylejax.models.layers import EqualConv2d
from stylejax.models.synthesis import SynthesisBlock, SynthesisLayer

KEY = jax.random.key(0)
SIZES = dict(resolution=32, channel_base=512, channel_max=32)


def official_generator_params(arch: str, res=32, base=512, cmax=32, z=512, w=512, mapping=8, rgb=3) -> int:
    """Trained parameters of the official Generator, block by block (networks.py's layers)."""
    ch = lambda r: min(base // r, cmax)  # noqa: E731
    count = z * w + w + (mapping - 1) * (w * w + w)
    layer = lambda cin, cout: cout * cin * 9 + cout + 1 + w * cin + cin  # noqa: E731  weight, bias, noise, affine
    torgb = lambda c: rgb * c + rgb + w * c + c  # noqa: E731
    r = 4
    while r <= res:
        c = ch(r)
        if r == 4:
            count += c * 16 + layer(c, c)
        else:
            count += layer(ch(r // 2), c) + layer(c, c)
            if arch == "resnet":
                count += c * ch(r // 2)
        if arch == "skip" or r == res:
            count += torgb(c)
        r *= 2
    return count


@pytest.mark.parametrize("arch", ["skip", "orig", "resnet"])
def test_generator_parameter_counts_equal_official(arch):
    G = Generator(architecture=arch, **SIZES)
    params = jax.eval_shape(lambda: G.init({"params": KEY, "noise": KEY}, jnp.zeros((1, 512))))["params"]
    assert sum(x.size for x in jax.tree_util.tree_leaves(params)) == official_generator_params(arch)


def init_generator(arch: str):
    G = Generator(architecture=arch, z_dim=32, w_dim=32, mapping_layers=2, **SIZES)
    return G, G.init({"params": KEY, "noise": KEY}, jnp.zeros((1, 32)))


def test_orig_generator_is_skip_without_its_earlier_rgb_outputs():
    """'skip' sums every block's ToRGB; with all but the last zeroed it is 'orig'."""
    G_skip, skip_vars = init_generator("skip")
    G_orig, _ = init_generator("orig")
    flat = traverse_util.flatten_dict(skip_vars)
    orig_flat = {}
    for path, value in flat.items():
        if "torgb" in path and path[2] != "b32":
            flat[path] = jnp.zeros_like(value) if path[-1] in ("weight", "bias") else value
        else:
            orig_flat[path] = value
    z = jax.random.normal(jax.random.key(1), (3, 32))
    np.testing.assert_allclose(
        G_skip.apply(traverse_util.unflatten_dict(flat), z, noise_mode="const"),
        G_orig.apply(traverse_util.unflatten_dict(orig_flat), z, noise_mode="const"), atol=1e-6)


def test_resnet_generator_block_is_skip_plus_convs():
    """A resnet block: sqrt(0.5) (1x1 up-conv of x) + conv1(conv0(x)) with conv1's gain sqrt(0.5)."""
    _, variables = init_generator("resnet")
    block = variables["params"]["synthesis"]["b8"]
    noise = variables["noise_consts"]["synthesis"]["b8"]
    x = jax.random.normal(jax.random.key(2), (2, 4, 4, 32))
    ws = jax.random.normal(jax.random.key(3), (2, 3, 32))
    layer = lambda name, **kw: SynthesisLayer(features=32, resolution=8, name=name, **kw)  # noqa: E731
    conv = lambda name, inp, w, **kw: layer(name, up=2 if name == "conv0" else 1).apply(  # noqa: E731
        {"params": block[name], "noise_consts": noise[name]}, inp, w, "const", **kw)
    h = conv("conv0", x, ws[:, 0])
    expected = EqualConv2d(32, 1, use_bias=False, up=2).apply({"params": block["skip"]}, x,
                                                              gain=math.sqrt(0.5))
    expected = expected + conv("conv1", h, ws[:, 1], gain=math.sqrt(0.5))
    out, img = SynthesisBlock(32, 8, 3, is_last=False, architecture="resnet").apply(
        {"params": block, "noise_consts": noise}, x, None, ws, "const")
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert img is None  # no ToRGB before the last block


def test_skip_discriminator_is_orig_without_its_extra_rgb_inputs():
    """'skip' D adds a fromRGB of the down-sampled image at every later block and at 4x4; with
    those zeroed (weights and biases: lrelu(0) = 0) it is 'orig'."""
    D_skip = Discriminator(architecture="skip", mbstd_group_size=2, **SIZES)
    D_orig = Discriminator(architecture="orig", mbstd_group_size=2, **SIZES)
    img = jax.random.normal(jax.random.key(4), (4, 32, 32, 3))
    flat = traverse_util.flatten_dict(D_skip.init(KEY, img))
    orig_flat = {}
    for path, value in flat.items():
        extra = "fromrgb" in path and path[1] != "b32"
        if extra:
            flat[path] = jnp.zeros_like(value)
        else:
            orig_flat[path] = value
    np.testing.assert_allclose(D_skip.apply(traverse_util.unflatten_dict(flat), img),
                               D_orig.apply(traverse_util.unflatten_dict(orig_flat), img), atol=1e-5)


def test_conv_clamp_clips_every_layer_output():
    """A clamp below the activations' range changes the image; one above it changes nothing."""
    G, variables = init_generator("skip")
    z = jax.random.normal(jax.random.key(5), (2, 32))
    free = G.apply(variables, z, noise_mode="const")
    loose = Generator(architecture="skip", z_dim=32, w_dim=32, mapping_layers=2, conv_clamp=1e6, **SIZES)
    tight = Generator(architecture="skip", z_dim=32, w_dim=32, mapping_layers=2, conv_clamp=0.05, **SIZES)
    np.testing.assert_array_equal(loose.apply(variables, z, noise_mode="const"), free)
    clamped = np.asarray(tight.apply(variables, z, noise_mode="const"))
    assert not np.allclose(clamped, free)
    # The image is the sum of four ToRGB outputs, each clipped to 0.05; upsampling keeps a bound
    # (every output phase of the [1, 3, 3, 1] filter has non-negative taps summing to 1).
    assert np.abs(clamped).max() <= 4 * 0.05 + 1e-6
