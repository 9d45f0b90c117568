"""StyleGAN (2018): parameter counts from the official variable shapes, the fused resampling convs
against their unfused forms, and the level-of-detail blending of G and D."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax.models.stylegan1 import (
    Conv2dLayer,
    StyleGAN1Discriminator,
    StyleGAN1Generator,
    downscale2d,
    upscale2d,
)

KEY = jax.random.key(0)
SMALL = dict(resolution=16, channel_base=128, channel_max=16, z_dim=8, w_dim=8, mapping_layers=2)


def official_counts(res, fmap_base, fmap_max, z=512, w=512, mapping=8, rgb=3) -> tuple[int, int]:
    """Trainable variables of networks_stylegan.py's G_style and D_basic, layer by layer (TF's
    nf(stage) = min(fmap_base / 2^stage, fmap_max))."""
    nf = lambda stage: min(fmap_base // 2 ** stage, fmap_max)  # noqa: E731
    top = int(np.log2(res))
    g = z * w + w + (mapping - 1) * (w * w + w)  # Dense0..7 weight and bias
    epilogue = lambda c: c + c + w * 2 * c + 2 * c  # noqa: E731  Noise/weight, bias, StyleMod
    g += nf(1) * 16 + epilogue(nf(1))  # 4x4/Const
    g += 9 * nf(1) * nf(1) + epilogue(nf(1))  # 4x4/Conv
    for r in range(3, top + 1):  # Conv0_up, Conv1
        g += 9 * nf(r - 2) * nf(r - 1) + epilogue(nf(r - 1)) + 9 * nf(r - 1) ** 2 + epilogue(nf(r - 1))
    g += sum(nf(r - 1) * rgb + rgb for r in range(2, top + 1))  # ToRGB_lod*
    d = sum(rgb * nf(r - 1) + nf(r - 1) for r in range(2, top + 1))  # FromRGB_lod*
    for r in range(3, top + 1):  # Conv0, Conv1_down
        d += 9 * nf(r - 1) ** 2 + nf(r - 1) + 9 * nf(r - 1) * nf(r - 2) + nf(r - 2)
    d += 9 * (nf(1) + 1) * nf(1) + nf(1)  # 4x4/Conv after minibatch stddev
    d += 16 * nf(1) * nf(0) + nf(0) + nf(0) * 1 + 1  # Dense0, Dense1
    return g, d


def count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def init_shapes(G, D):
    g = jax.eval_shape(lambda k: G.init({"params": k, "noise": k}, jnp.zeros((1, G.z_dim))), KEY)
    img = jnp.zeros((4, D.resolution, D.resolution, D.img_channels))
    return g, jax.eval_shape(lambda k: D.init(k, img), KEY)


@pytest.mark.parametrize("res, fmap_base, fmap_max, z, mapping", [
    (1024, 8192, 512, 512, 8),  # the FFHQ release (the paper: 26.2M in G)
    (256, 8192, 512, 512, 8),  # cats, bedrooms
    (16, 64, 16, 8, 2),
])
def test_parameter_counts_equal_official(res, fmap_base, fmap_max, z, mapping):
    sizes = dict(resolution=res, channel_base=2 * fmap_base, channel_max=fmap_max)
    g, d = init_shapes(StyleGAN1Generator(z_dim=z, w_dim=z, mapping_layers=mapping, **sizes),
                       StyleGAN1Discriminator(**sizes))
    assert (count(g["params"]), count(d["params"])) == official_counts(res, fmap_base, fmap_max, z,
                                                                         z, mapping)
    num_layers = 2 * int(np.log2(res)) - 2
    assert g["stats"]["mapping"]["w_avg"].shape == (z,)
    assert len(jax.tree_util.tree_leaves(g["noise_consts"])) == num_layers
    if res == 1024:
        assert round(count(g["params"]) / 1e6, 1) == 26.2


def test_fused_convs_are_the_resampled_convs():
    """The official fused up-conv is nearest upsampling and a conv with the kernel flipped (a
    transposed conv); the fused down-conv is the conv then the 2x2 box filter."""
    x = jax.random.normal(KEY, (2, 8, 8, 3))
    v = Conv2dLayer(4, 3).init(KEY, x)
    kernel = v["params"]["kernel"]
    flipped = {"params": {"kernel": kernel[::-1, ::-1]}}
    up_fused = Conv2dLayer(4, 3, up=True, fused=True).apply(v, x)
    np.testing.assert_allclose(up_fused, Conv2dLayer(4, 3).apply(flipped, upscale2d(x)), atol=1e-5)
    down_fused = Conv2dLayer(4, 3, down=True, fused=True).apply(v, x)
    np.testing.assert_allclose(down_fused, downscale2d(Conv2dLayer(4, 3).apply(v, x)), atol=1e-5)


@pytest.fixture(scope="module")
def small():
    G = StyleGAN1Generator(**SMALL)
    D = StyleGAN1Discriminator(**{k: SMALL[k] for k in ("resolution", "channel_base", "channel_max")})
    z = jax.random.normal(jax.random.key(1), (4, G.z_dim))
    g_vars = G.init({"params": KEY, "noise": KEY}, z)
    # noise and the styles start at 0; give them weight so that every layer acts
    g_vars["params"] = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 0.3 if "noise_strength" in str(path) or "bias" in str(path) else x,
        g_vars["params"])
    d_params = D.init(KEY, jnp.zeros((4, 16, 16, 3)))
    return G, D, z, g_vars, d_params


def test_generator_lod_blends_the_upscaled_lower_resolution(small):
    G, _, z, g_vars, _ = small
    run = jax.jit(lambda lod: G.apply(g_vars, z, noise_mode="const", lod=lod))
    full, half, blend, quarter = run(0.0), run(1.0), run(0.25), run(2.0)
    assert full.shape == (4, 16, 16, 3) and np.all(np.isfinite(full))
    # lod 1: the 8x8 ToRGB upscaled, constant over 2x2 blocks (up to the lerp's rounding); lod 2:
    # over 4x4 blocks
    np.testing.assert_allclose(half, upscale2d(half[:, ::2, ::2]), atol=1e-5)
    np.testing.assert_allclose(quarter, upscale2d(quarter[:, ::4, ::4], 4), atol=1e-5)
    assert not np.allclose(half, quarter, atol=1e-3) and not np.allclose(full, half, atol=1e-3)
    np.testing.assert_allclose(blend, 0.75 * full + 0.25 * half, atol=1e-5)
    np.testing.assert_allclose(run(-1.0), full, atol=0)  # clipped, as the official lerp_clip


def test_discriminator_lod_reads_the_box_filtered_image(small):
    _, D, _, _, d_params = small
    img = jax.random.normal(jax.random.key(2), (4, 16, 16, 3))
    other = upscale2d(downscale2d(img))  # the same 2x2 means, none of the detail
    run = jax.jit(lambda x, lod: D.apply(d_params, x, lod=lod))
    np.testing.assert_allclose(run(img, 1.0), run(other, 1.0), atol=1e-5)
    assert not np.allclose(run(img, 0.0), run(other, 0.0), atol=1e-4)
    assert run(img, 0.0).shape == (4, 1)


def test_unconditional_only():
    with pytest.raises(ValueError, match="unconditional"):
        StyleGAN1Generator(c_dim=10, **SMALL)
