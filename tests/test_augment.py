"""ADA's augmentations against closed forms and slow references, its p rule by hand."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from jax.test_util import check_grads

from stylejax.configs import base_config
from stylejax.train.augment import PIPES, AugmentPipe, adjust_p, augment_pipe
from stylejax.train.state import TrainState
from stylejax.train.step import adapt_p

KEY = jax.random.key(7)


def noise_images(batch=8, size=16, channels=3, seed=0) -> jnp.ndarray:
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, channels)),
                       jnp.float32)


def smooth_images(batch=4, size=32) -> np.ndarray:
    """Low frequencies only: resampling filters barely touch them."""
    y, x = np.mgrid[:size, :size] / size
    rng = np.random.default_rng(1)
    images = []
    for _ in range(batch):
        a, b, c = rng.uniform(0.2, 0.8, 3)
        images.append(np.stack([np.sin(2 * np.pi * a * x + b) * np.cos(2 * np.pi * c * y),
                                np.cos(2 * np.pi * (b * x + a * y)), x * y], -1))
    return np.asarray(images, np.float32)


def test_p_zero_leaves_every_image_bit_identical():
    images = noise_images()
    out = jax.jit(augment_pipe("bgcfnc"))(images, jnp.float32(0), KEY)  # every transform
    assert np.array_equal(np.asarray(out).view(np.uint32), np.asarray(images).view(np.uint32))


def reflect_shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """np.roll by (dy, dx) with the edges mirrored instead of wrapped."""
    m = max(abs(dx), abs(dy), 1)
    padded = np.pad(image, ((m, m), (m, m), (0, 0)), mode="reflect")
    h, w = image.shape[:2]
    return padded[m - dy:m - dy + h, m - dx:m - dx + w]


@pytest.mark.parametrize("transform, candidates", [
    ("xflip", lambda im: [im, np.flip(im, axis=1)]),
    ("rotate90", lambda im: [np.rot90(im, k, axes=(0, 1)) for k in range(4)]),
    ("xint", lambda im: [reflect_shift(im, dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)]),
])
def test_pixel_blits_equal_their_numpy_closed_forms_exactly(transform, candidates):
    """p = 1: every image is exactly one of the transform's outcomes (integer shifts up to
    round(0.125 * 16) = 2 pixels), and the batch shows more than one of them."""
    images = np.asarray(noise_images(batch=24))
    out = np.asarray(jax.jit(AugmentPipe(**{transform: 1}))(jnp.asarray(images), jnp.float32(1), KEY))
    outcomes = set()
    for image, result in zip(images, out, strict=True):
        matches = [i for i, c in enumerate(candidates(image)) if np.array_equal(result, c)]
        assert len(matches) == 1
        outcomes.add(matches[0])
    assert len(outcomes) > 1


def reference_warp(image: np.ndarray, g_inv: np.ndarray) -> np.ndarray:
    """scipy's cubic spline at g_inv @ (x, y) about the centre, mirrored past the edges."""
    c = (image.shape[0] - 1) / 2
    matrix = g_inv[:2, :2][::-1, ::-1]  # (row, col) = (y, x)
    offset = np.array([c, c]) - matrix @ np.array([c, c]) + g_inv[1::-1, 2]
    return np.stack([scipy.ndimage.affine_transform(image[..., k], matrix, offset, order=3,
                                                    mode="mirror") for k in range(image.shape[-1])], -1)


@pytest.mark.parametrize("transform", ["scale", "rotate", "aniso", "xfrac"])
def test_geometric_transforms_agree_with_a_slow_reference_away_from_the_border(transform):
    images = smooth_images()
    pipe = AugmentPipe(**{transform: 1})
    draws = pipe.draw(KEY, jnp.float32(1), images.shape)
    out = np.asarray(jax.jit(pipe.apply)(jnp.asarray(images), draws))
    g_inv = np.asarray(draws["geom_inv"], np.float64)
    assert np.abs(g_inv - np.eye(3)).max() > 0.05  # the transforms drawn are not identities
    for image, result, g in zip(images, out, g_inv, strict=True):
        expected = reference_warp(image, g)
        assert np.abs(result - expected)[6:-6, 6:-6].max() < 0.02


def luma_parts(pixel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    luma = np.full(3, pixel.mean())
    return luma, pixel - luma


def check_color(transform, image, result, matrix):
    """Each colour transform's matrix is its closed form, and the image is that matrix applied."""
    v = np.array([1, 1, 1, 0]) / math.sqrt(3)
    vv = np.outer(v, v)
    if transform == "brightness":
        b = matrix[0, 3]
        assert np.allclose(matrix, np.eye(4) + np.outer([1, 1, 1, 0], [0, 0, 0, b]), atol=1e-6)
    elif transform == "contrast":
        assert np.allclose(matrix, np.diag([matrix[0, 0]] * 3 + [1]), atol=1e-6)
    elif transform == "lumaflip":
        assert np.allclose(matrix, np.eye(4), atol=1e-6) or np.allclose(matrix, np.eye(4) - 2 * vv, atol=1e-6)
    elif transform == "hue":  # a rotation about the luma axis by the angle its trace says
        cos = (np.trace(matrix[:3, :3]) - 1) / 2
        sin = math.sqrt(max(0.0, 1 - cos ** 2))
        k = np.cross(np.eye(3), v[:3])  # the cross-product matrix of the axis
        for s in (sin, -sin):
            rodrigues = cos * np.eye(3) + s * k + (1 - cos) * np.outer(v[:3], v[:3])
            if np.allclose(matrix[:3, :3], rodrigues, atol=1e-5):
                break
        else:
            pytest.fail(f"not a rotation about the luma axis: {matrix}")
    elif transform == "saturation":
        s = matrix[0, 0] * 3 / 2 - 0.5  # vv's diagonal is 1/3
        assert np.allclose(matrix, vv + (np.eye(4) - vv) * s, atol=1e-5)
    expected = image @ matrix[:3, :3].T + matrix[:3, 3]
    assert np.allclose(result, expected, atol=1e-5)


@pytest.mark.parametrize("transform", ["brightness", "contrast", "lumaflip", "hue", "saturation"])
def test_colour_transforms_equal_their_closed_form_matrices(transform):
    images = noise_images(batch=6, size=4)
    pipe = AugmentPipe(**{transform: 1})
    draws = pipe.draw(KEY, jnp.float32(1), images.shape)
    out = np.asarray(pipe.apply(images, draws))
    matrices = np.asarray(draws["color"], np.float64)
    assert not np.allclose(matrices, np.eye(4))
    for image, result, matrix in zip(np.asarray(images), out, matrices, strict=True):
        check_color(transform, image, result, matrix)


def test_greyscale_colour_uses_the_matrix_mean_row():
    images = noise_images(batch=4, size=4, channels=1)
    pipe = AugmentPipe(brightness=1, contrast=1)
    draws = pipe.draw(KEY, jnp.float32(1), images.shape)
    out = np.asarray(pipe.apply(images, draws))
    row = np.asarray(draws["color"])[:, :3, :].mean(axis=1)
    expected = np.asarray(images) * row[:, :3].sum(-1)[:, None, None, None] + row[:, 3][:, None, None, None]
    assert np.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("pipe, p", [(AugmentPipe(brightness=1), 0.3), (AugmentPipe(rotate=1), 0.5),
                                     (AugmentPipe(cutout=1), 0.2)])
def test_fraction_of_images_touched_is_p(pipe, p):
    n = 600
    images = noise_images(batch=n, size=8, channels=1)
    out = np.asarray(jax.jit(pipe)(images, jnp.float32(p), KEY))
    touched = np.mean(np.any(out != np.asarray(images), axis=(1, 2, 3)))
    assert abs(touched - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_gradients_flow_through_the_pipe():
    """G trains through the augmentation of its fakes."""
    images = noise_images(batch=2, size=8)
    pipe = augment_pipe("bgcfnc")
    draws = pipe.draw(KEY, jnp.float32(1), images.shape)
    # The pipe is affine in the images: a large step makes the finite differences exact.
    check_grads(lambda x: pipe.apply(x, draws), (images,), order=1, modes=["rev"], eps=0.1)


def test_every_official_pipe_is_known():
    assert set(PIPES) == {"blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf",
                          "bgcfn", "bgcfnc"}
    assert PIPES["bgc"] == {k: 1 for k in ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
                                          "brightness", "contrast", "lumaflip", "hue", "saturation")}


def test_p_rule_on_a_scripted_sign_sequence():
    """Batch 64, interval 4 (256 images), kimg 0.5: each move is 256 / 500 = 0.512."""
    p = jnp.float32(0.3)
    steps = []
    for mean_sign in (0.9, 0.9, 0.2, 0.6, -1.0, 1.0):
        p = adjust_p(p, jnp.float32(mean_sign), 0.6, 256, 0.5)
        steps.append(float(p))
    assert np.allclose(steps, [0.812, 1.324, 0.812, 0.812, 0.3, 0.812], atol=1e-6)
    assert float(adjust_p(jnp.float32(0.1), jnp.float32(0.0), 0.6, 256, 0.5)) == 0.0  # clipped at 0


def test_p_moves_every_interval_on_the_signs_since_the_last_move():
    """What the train step does after each step: batch 64, interval 4, kimg 0.5, target 0.6."""
    config = base_config()
    config.batch_size = 64
    config.augment.update(mode="ada", interval=4, kimg=0.5, target=0.6)
    fields = {f.name: None for f in dataclasses.fields(TrainState)}
    state = TrainState(**{**fields, "step": jnp.int32(0), "ada_p": jnp.float32(0.3),
                          "ada_signs": jnp.zeros(2, jnp.float32)})
    signs = [64, 40, 60, 66, -10, 0, 12, 62, 64, 64]  # sums of sign(D(real)) over each step's 64
    ps = []
    for total in signs:
        state = state.replace(step=state.step + 1, ada_signs=state.ada_signs + jnp.array([total, 64.0]))
        state = adapt_p(config, state)
        ps.append(float(state.ada_p))
    # After step 4: r_t = 230 / 256 > 0.6, p + 0.512; after step 8: 64 / 256 < 0.6, p - 0.512.
    assert np.allclose(ps, [0.3] * 3 + [0.812] * 4 + [0.3] * 3, atol=1e-6)
    assert np.array_equal(np.asarray(state.ada_signs), [128, 128])  # steps 9 and 10 so far
