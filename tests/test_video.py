"""stylejax.video and `python -m stylejax.sample video`: the frames against the networks themselves,
and the files decoded back."""

import functools

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax import video
from stylejax.checkpoints import load_generator
from stylejax.figures import Renderer
from stylejax.sample import main
from stylejax.sampling import to_uint8, z_from_seeds
from tests.test_refusals import TINY

RES = 32  # the tiny official network's; its ws 0-3 are the coarse styles


@pytest.fixture(scope="module")
def network():
    trained = load_generator(TINY)
    return trained.G, trained.variables, Renderer(trained.G, trained.variables, batch=4)


def styles(G, variables, seed, psi=1.0):
    return np.asarray(G.apply(variables, jnp.asarray(z_from_seeds([seed], G.z_dim)), truncation_psi=psi,
                              method=G.map_latents))


def expected(G, variables, ws):
    """The networks' image of styles ws [1, num_ws, w_dim], drawn alone (jitted once: only the
    constant noise, so no key)."""
    return to_uint8(_synthesize(G)(variables, jnp.asarray(ws, jnp.float32)))[0]


@functools.cache
def _synthesize(G):
    return jax.jit(lambda variables, ws: G.apply(variables, ws, "const", method=G.synthesize))


def frames(renderer, animation, frames_per_key):
    return np.concatenate(list(video.frame_batches(renderer, animation, frames_per_key)))


def test_slerp_keeps_to_the_great_circle():
    a, b = np.eye(3, dtype=np.float32)[:2] * 2
    path = video.slerp(np.stack([a, a, a]), np.stack([b, b, b]), np.array([0, 0.5, 1]))
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_allclose(path[1], (a + b) / np.sqrt(2), atol=1e-6)  # length 2 kept, not sqrt 2
    np.testing.assert_allclose(path[2], b, atol=1e-6)


def test_walks_loop_through_the_seeds_and_sweeps_pass_their_keyframes(network):
    G, variables, renderer = network
    walk = frames(renderer, video.style_walk(renderer, [2, 5]), 2)
    assert walk.shape == (4, RES, RES, 3)
    ws2, ws5 = styles(G, variables, 2), styles(G, variables, 5)
    np.testing.assert_array_equal(walk[0], expected(G, variables, ws2))
    np.testing.assert_array_equal(walk[1], expected(G, variables, (ws2 + ws5) / 2))  # halfway
    np.testing.assert_array_equal(walk[2], expected(G, variables, ws5))
    truncation = frames(renderer, video.truncation_sweep(renderer, 2, [1, 0]), 1)  # psi 1, 0
    w_avg = np.broadcast_to(variables["stats"]["mapping"]["w_avg"], ws2.shape)
    np.testing.assert_array_equal(truncation[0], walk[0])
    np.testing.assert_array_equal(truncation[1], expected(G, variables, w_avg))
    morph = frames(renderer, video.style_morph(renderer, 2, [5, 7], range(4)), 2)
    ws7 = styles(G, variables, 7)
    for frame, column in [(0, ws5), (2, ws7)]:  # keyframes: the row seed with a column seed's coarse ws
        mixed = np.concatenate([column[:, :4], ws2[:, 4:]], 1)
        np.testing.assert_array_equal(morph[frame], expected(G, variables, mixed))
    blend = frames(renderer, video.degree_blend(renderer, 2, 7, range(4), [0, 1]), 2)
    np.testing.assert_array_equal(blend[0], walk[0])
    np.testing.assert_array_equal(blend[2], morph[2])  # degree 1: copied
    np.testing.assert_array_equal(blend[1], blend[3])  # degree 0.5 on the way up and down


@pytest.mark.parametrize("fmt, tolerance", [("gif", 0), ("mp4", 6)])
def test_video_files_decode_to_their_frames(network, tmp_path, fmt, tolerance):
    G, variables, renderer = network
    assert main(["video", "--network", TINY, "--outdir", str(tmp_path), "--kind", "walk_z", "--seeds",
                 "2,5,7", "--frames", "2", "--format", fmt, "--upscale", "2", "--batch", "4"]) == 0
    decoded = iio.imread(tmp_path / f"walk_z.{fmt}", index=None)[..., :3]
    assert decoded.shape == (6, 2 * RES, 2 * RES, 3)
    first = expected(G, variables, styles(G, variables, 2)).repeat(2, 0).repeat(2, 1)
    # seed 2's image has under 256 colours: the GIF palette holds them exactly; H.264 is lossy.
    assert np.abs(decoded[0].astype(float) - first).mean() <= tolerance
    assert [p.name for p in tmp_path.iterdir()] == [f"walk_z.{fmt}"]  # no temporary file left
