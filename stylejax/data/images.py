"""One image from encoded bytes to the square uint8 array a dataset stores, and back to PNG.

Kept free of TensorFlow so that the prepare tool's worker processes start fast.
"""

import io

import numpy as np
from PIL import Image

CROPS = ("center", "pad")
FILTERS = {"box": Image.Resampling.BOX, "lanczos": Image.Resampling.LANCZOS}
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

# What PIL raises on a file that is not an image, is truncated or is corrupt.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def decode(data: bytes, channels: int) -> np.ndarray:
    """Decodes an image file to uint8 [H, W, channels].

    Transparent images (RGBA, LA, palette with transparency) are composited onto black,
    `round(value * alpha / 255)`, so that hidden colour under transparent pixels never shows.
    Grey images are replicated to RGB when `channels == 3`; colour images become grey with PIL's
    ITU-R 601-2 luma when `channels == 1`. 16-bit images are scaled to 8 bits.
    """
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
            wide = np.asarray(image, np.int64)
            image = Image.fromarray(((np.clip(wide, 0, 65535) * 255 + 32767) // 65535)
                                    .astype(np.uint8))
        if image.has_transparency_data:
            image = image.convert("LA" if image.mode in ("L", "LA", "La") else "RGBA")
            rgba = np.asarray(image, np.uint32)
            color, alpha = rgba[..., :-1], rgba[..., -1:]
            composited = ((color * alpha + 127) // 255).astype(np.uint8)
            image = Image.fromarray(composited[..., 0] if composited.shape[-1] == 1
                                    else composited)
        array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    return array[..., None] if channels == 1 else array


def to_square(image: np.ndarray, crop: str) -> np.ndarray:
    """Makes an image square: 'center' cuts the long side, 'pad' adds black to the short one."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    h, w = image.shape[:2]
    if h == w:
        return image
    if crop == "center":
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        return image[top:top + s, left:left + s]
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    out = np.zeros((s, s, image.shape[2]), image.dtype)
    out[top:top + h, left:left + w] = image
    return out


def resize(image: np.ndarray, resolution: int, resize_filter: str) -> np.ndarray:
    """Resizes a square uint8 [S, S, C] image to [resolution, resolution, C].

    'box' averages source pixels. When S is a multiple of the resolution it is the exact k x k
    mean rounded to nearest, as the official StyleGAN dataset tool computed its lower resolutions
    (FFHQ 256 from 1024); PIL's fixed-point box filter can be off by one there. 'lanczos' is
    PIL's sharper windowed sinc.
    """
    if resize_filter not in FILTERS:
        raise ValueError(f"filter must be one of {tuple(FILTERS)}, got {resize_filter!r}")
    size, channels = image.shape[0], image.shape[2]
    if size == resolution:
        return image
    if resize_filter == "box" and size % resolution == 0:
        k = size // resolution
        blocks = image.reshape(resolution, k, resolution, k, channels)
        return np.rint(blocks.mean(axis=(1, 3), dtype=np.float64)).astype(np.uint8)
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    out = np.asarray(pil.resize((resolution, resolution), FILTERS[resize_filter]))
    return out[..., None] if channels == 1 else out


def encode_png(image: np.ndarray) -> bytes:
    """Encodes uint8 [H, W, C] as PNG, the lossless format the datasets store."""
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def prepare_image(data: bytes, resolution: int, crop: str, resize_filter: str,
                  channels: int) -> bytes:
    """Encoded file in, dataset PNG out: decode, make square, resize, encode."""
    return encode_png(resize(to_square(decode(data, channels), crop), resolution, resize_filter))


def try_prepare_image(data: bytes, resolution: int, crop: str, resize_filter: str,
                      channels: int) -> tuple[bytes | None, str | None]:
    """`prepare_image` that reports an unreadable file as (None, reason) instead of raising.

    Runs in the prepare tool's worker processes, where one bad file must not stop the others.
    """
    try:
        return prepare_image(data, resolution, crop, resize_filter, channels), None
    except Image.UnidentifiedImageError:
        return None, "not an image file PIL can read"
    except DECODE_ERRORS as e:
        return None, f"{type(e).__name__}: {e}"
