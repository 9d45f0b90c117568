"""StyleGAN (2018): parameter counts from the official variable shapes, the fused resampling convs
against their unfused forms, the level-of-detail blending of G and D, the official release format
against the official code's outputs, and sampling, checkpoints and a train step on it."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from stylejax import sample
from stylejax.errors import NetworkFileError
from stylejax.models import mix_styles
from stylejax.models.stylegan1 import (
    Conv2dLayer,
    StyleGAN1Discriminator,
    StyleGAN1Generator,
    downscale2d,
    upscale2d,
)
from stylejax.networks import build_networks
from stylejax.official import load_network_file
from stylejax.official.unpickle import read_network_pickle
from stylejax.sampling import to_uint8, z_from_seeds
from stylejax.train.state import create_train_state
from stylejax.train.step import TrainPhases, make_phases, run_phases
from tests import official_files as of
from tests.checkpoint_helpers import assert_bitwise_equal, flat_leaves, restore_state, save_init_checkpoint
from tests.train_helpers import random_batch, tiny_config

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
    g_vars = jax.jit(lambda key: G.init({"params": key, "noise": key}, z))(KEY)
    # noise and the styles start at 0; give them weight so that every layer acts
    g_vars["params"] = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 0.3 if "noise_strength" in str(path) or "bias" in str(path) else x,
        g_vars["params"])
    d_params = jax.jit(lambda key: D.init(key, jnp.zeros((4, 16, 16, 3))))(KEY)
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


# The official release format: tests/fixtures/stylegan1 holds a 128x128 network made, randomised and
# pickled by NVlabs/stylegan's TF code, and that code's outputs (tests/scripts/stylegan1_fixtures.py).
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "stylegan1")
TINY = os.path.join(FIXTURES, "tiny.pkl")
TOLERANCE = 1e-4  # max |diff| / max |official|


@pytest.fixture(scope="module")
def official():
    return load_network_file(TINY), dict(np.load(os.path.join(FIXTURES, "tiny_expected.npz")))


def assert_official(actual, expected, nchw: bool = False) -> None:
    actual = np.asarray(actual, np.float64)
    actual = np.transpose(actual, (0, 3, 1, 2)) if nchw else actual
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) / np.max(np.abs(expected)) < TOLERANCE


def test_release_pickle_computes_what_the_official_code_does(official):
    net, expected = official
    assert net.architecture.generation == "stylegan1" and net.augment_p is None
    assert (net.architecture.resolution, net.architecture.channel_base) == (128, 512)
    G, D = net.architecture.generator(), net.architecture.discriminator()
    z = expected["z"]
    assert_official(G.apply(net.G_ema, z, method=G.map_latents), expected["Gs/ws"])
    assert_official(G.apply(net.G, z, method=G.map_latents), expected["G/ws"])
    images = jax.jit(lambda v, z, psi, lod: G.apply(v, z, truncation_psi=psi, truncation_cutoff=8,
                                                     noise_mode="const", lod=lod))
    assert_official(images(net.G_ema, z, 1.0, 0.0), expected["Gs/img_psi1"], nchw=True)
    # the release's truncation: psi 0.7 on the first 8 ws (of 12 at 128x128)
    # one compiled program: the official ran these on z[:1] and z[1:]
    assert_official(images(net.G_ema, z, 0.7, 0.0)[:1], expected["Gs/img_psi0.7_cutoff8"], nchw=True)
    assert_official(images(net.G_ema, z, 1.0, 1.5)[1:], expected["Gs/img_psi1_lod1.5"], nchw=True)
    reals = np.transpose(expected["Gs/img_psi1"], (0, 2, 3, 1))
    assert_official(D.apply(net.D, reals), expected["D/scores"])
    assert_official(D.apply(net.D, reals, lod=1.3), expected["D/scores_lod1.3"])


def rewritten(tmp_path, change) -> str:
    """The fixture pickled again after `change(Gs state, D state)`."""
    def network(state):
        components = {k: network(c.state) for k, c in (state.get("components") or {}).items()}
        return of.Call(of.Global("dnnlib.tflib.network", "Network"), state=dict(
            state, components=of.easydict(components),
            variables=[(k, of.tf_array(v)) for k, v in state["variables"]]))
    G, D, Gs = read_network_pickle(TINY)
    change(Gs.state, D.state)
    path = str(tmp_path / "changed.pkl")
    of.write(path, (network(G.state), network(D.state), network(Gs.state)))
    return path


def set_lod(state, _):
    state["variables"] = [(k, np.float32(0.5) if k == "lod" else v) for k, v in state["variables"]]


@pytest.mark.parametrize("change, message", [
    (set_lod, "its lod is 0.5: a snapshot taken while growing"),
    (lambda g, d: g["static_kwargs"].update(use_pixel_norm=True),
     "unsupported network: StyleGAN option use_pixel_norm=True (stylejax builds False)"),
    (lambda g, d: d["static_kwargs"].update(fmap_max=8), "D's fmap_max 8 differs from G's 16"),
])
def test_release_pickles_stylejax_cannot_build_are_refused(tmp_path, change, message):
    with pytest.raises(NetworkFileError, match=re.escape(message)):
        load_network_file(rewritten(tmp_path, change))


def test_style_mixing_figure_of_a_release_network(official, tmp_path):
    net, _ = official
    G = net.architecture.generator()
    assert sample.main(["mixing", "--network", TINY, "--row_seeds", "5", "--col_seeds", "6",
                        "--styles", "fine", "--outdir", str(tmp_path)]) == 0
    figure = np.asarray(Image.open(tmp_path / "stylemix.png").convert("RGB"))
    ws = [G.apply(net.G_ema, jnp.asarray(z_from_seeds([s], G.z_dim)), method=G.map_latents)
          for s in (5, 6)]
    mixed = mix_styles(ws[0], ws[1], 8)  # fine: ws 8-11 from the column seed
    key = jax.random.fold_in(jax.random.key(0), 5)
    cell = to_uint8(G.apply(net.G_ema, mixed, "const", rngs={"noise": key}, method=G.synthesize))[0]
    # the figure's jitted program and these plain calls round apart: a level at most, rarely
    difference = np.abs(figure[128:, 128:].astype(int) - np.asarray(cell, int))
    assert difference.max() <= 1 and difference.mean() < 1e-3
    assert (figure[128:, 128:] != figure[128:, :128]).any()


def stylegan1_config():
    config = tiny_config()
    config.model.generation = "stylegan1"
    config.batch_size = 4
    return config


def test_checkpoint_and_sampling_of_stylegan1(tmp_path):
    config = stylegan1_config()
    state = save_init_checkpoint(tmp_path, config, step=3)
    assert_bitwise_equal(flat_leaves(restore_state(tmp_path, config)), flat_leaves(state))
    assert sample.main(["seeds", "--workdir", str(tmp_path), "--seeds", "1", "--trunc", "0.7",
                        "--trunc_cutoff", "2", "--outdir", str(tmp_path / "out")]) == 0
    G, _ = build_networks(config, 0, 3)
    variables = {"params": state.ema_params, "stats": state.g_stats, "noise_consts": state.noise_consts}
    image = G.apply(variables, jnp.asarray(z_from_seeds([1], G.z_dim)), truncation_psi=0.7,
                    truncation_cutoff=2, noise_mode="const")
    written = np.asarray(Image.open(tmp_path / "out" / "seed0001.png").convert("RGB"))
    assert np.abs(written.astype(int) - np.asarray(to_uint8(image)[0], int)).max() <= 1


def test_train_step_with_r1_moves_g_and_d(tmp_path):
    """The paper's FFHQ loss: non-saturating logistic with R1, no path-length regularisation."""
    config = stylegan1_config()
    config.loss.pl_weight = 0.0
    G, D = build_networks(config, 0, 3)
    batch = {k: jnp.asarray(v) for k, v in random_batch(config).items()}
    first = create_train_state(config, G, D, jax.random.key(0))
    phases = TrainPhases(*(jax.jit(phase) for phase in make_phases(config, G, D)))
    after, metrics = run_phases(phases, first, batch, g_reg_phase=False, d_reg_phase=True)
    assert {"g_loss", "d_loss", "r1_penalty"} <= set(metrics)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    # at lod 0 the lower resolutions' ToRGB / fromRGB are blended in by 0: no gradient reaches them
    for name in ("g_params", "d_params"):
        before, now = flat_leaves(getattr(first, name)), flat_leaves(getattr(after, name))
        still = {k for k in before if np.array_equal(before[k], now[k])}
        assert still == {k for k in before if re.search(r"'b(4|8)_(torgb|fromrgb)'", k)}, name
