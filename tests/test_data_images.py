"""Decoding, transparency, channel conversion, crop / pad and resize of single images."""

import io

import numpy as np
import pytest
from PIL import Image

from stylejax.data.images import decode, prepare_image, resize, to_square, try_prepare_image
from tests.data_helpers import png_bytes, random_images


def encoded(array: np.ndarray, mode: str | None = None, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array, mode)
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def test_rgb_png_decodes_exactly():
    image = random_images(1, 5, 7)[0]
    np.testing.assert_array_equal(decode(png_bytes(image), 3), image)


def test_grey_is_replicated_to_rgb():
    grey = random_images(1, 4, 4, channels=1)[0]
    out = decode(png_bytes(grey), 3)
    assert out.shape == (4, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_rgb_to_grey_uses_luma():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200]]], np.uint8)
    out = decode(png_bytes(rgb), 1)
    assert out.shape == (1, 4, 1)
    expected = [(r * 299 + g * 587 + b * 114) / 1000 for r, g, b in rgb[0].astype(float)]
    np.testing.assert_allclose(out[0, :, 0], expected, atol=1)


def test_rgba_is_composited_on_black():
    rgba = np.array([[[200, 100, 50, 128], [10, 20, 30, 255], [255, 255, 255, 0]]], np.uint8)
    out = decode(png_bytes(rgba), 3)
    np.testing.assert_array_equal(out[0], [[100, 50, 25], [10, 20, 30], [0, 0, 0]])


def test_grey_alpha_is_composited_on_black():
    la = np.array([[[200, 51], [90, 255]]], np.uint8)
    out = decode(encoded(la, "LA"), 3)
    np.testing.assert_array_equal(out[0], [[40, 40, 40], [90, 90, 90]])


def test_palette_transparency_is_composited_on_black():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putdata([0, 1])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=1)
    np.testing.assert_array_equal(decode(buffer.getvalue(), 3)[0], [[255, 0, 0], [0, 0, 0]])


def test_sixteen_bit_grey_is_scaled_to_eight_bits():
    wide = np.array([[0, 257 * 100, 65535]], np.uint16)
    out = decode(encoded(wide), 1)
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255])


def test_jpeg_decodes_close_to_source():
    image = np.full((8, 8, 3), (30, 160, 220), np.uint8)
    out = decode(encoded(image, fmt="JPEG", quality=95), 3)
    assert np.abs(out.astype(int) - image).max() <= 3


def test_center_crop_keeps_the_middle():
    image = np.arange(4 * 8).reshape(4, 8, 1).astype(np.uint8)
    out = to_square(image, "center")
    np.testing.assert_array_equal(out, image[:, 2:6])
    tall = np.transpose(image, (1, 0, 2))
    np.testing.assert_array_equal(to_square(tall, "center"), tall[2:6])


def test_pad_centers_on_black():
    image = np.full((2, 6, 3), 9, np.uint8)
    out = to_square(image, "pad")
    assert out.shape == (6, 6, 3)
    np.testing.assert_array_equal(out[2:4], image)
    assert out[:2].max() == 0 and out[4:].max() == 0


def test_box_at_native_size_is_identity():
    image = random_images(1, 16, 16)[0]
    np.testing.assert_array_equal(resize(image, 16, "box"), image)


@pytest.mark.parametrize("factor", [2, 4])
def test_box_downscale_is_the_rounded_block_mean(factor):
    """As the official TF dataset tool made FFHQ 256 from 1024: float block mean, np.rint."""
    image = random_images(1, 8 * factor, 8 * factor, seed=3)[0]
    out = resize(image, 8, "box")
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    for y, x, c in [(0, 0, 0), (3, 5, 1), (7, 7, 2), (6, 1, 0)]:
        block = image[y * factor:(y + 1) * factor, x * factor:(x + 1) * factor, c]
        assert out[y, x, c] == np.rint(block.astype(np.float64).sum() / factor**2)


def test_box_for_non_integer_ratio_averages_neighbours():
    ramp = np.tile((np.arange(12) * 20).astype(np.uint8)[None, :, None], (12, 1, 1))
    out = resize(ramp, 8, "box")[0, :, 0].astype(int)
    assert out.shape == (8,)
    assert np.all(np.diff(out) > 0) and out[0] <= 20 and out[-1] >= 200
    assert set(out.tolist()) - set(ramp[0, :, 0].tolist())  # some are means, not copies


@pytest.mark.parametrize("resize_filter", ["box", "lanczos"])
@pytest.mark.parametrize("channels", [1, 3])
def test_resize_sizes(resize_filter, channels):
    image = random_images(1, 24, 24, channels=channels)[0]
    image = image[..., None] if channels == 1 else image
    for resolution in (4, 16, 64):
        out = resize(image, resolution, resize_filter)
        assert out.shape == (resolution, resolution, channels)


@pytest.mark.parametrize("crop", ["center", "pad"])
def test_prepare_image_makes_requested_size(crop):
    image = random_images(1, 30, 50)[0]
    out = np.asarray(Image.open(io.BytesIO(prepare_image(png_bytes(image), 16, crop, "lanczos",
                                                         3))))
    assert out.shape == (16, 16, 3)
    if crop == "pad":  # 10 of 50 rows of padding at the top -> about 3 of 16 rows stay black
        assert out[:2].max() < 8 and out[-2:].max() < 8
    else:
        assert out[:2].max() > 100


def test_unreadable_files_are_reported_not_raised():
    png = png_bytes(random_images(1, 8, 8)[0])
    assert try_prepare_image(png, 8, "center", "box", 3)[1] is None
    png_out, reason = try_prepare_image(b"definitely not an image", 8, "center", "box", 3)
    assert png_out is None and "not an image" in reason
    png_out, reason = try_prepare_image(png[: len(png) // 2], 8, "center", "box", 3)
    assert png_out is None and reason
