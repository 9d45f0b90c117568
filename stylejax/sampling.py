"""Turning generator outputs into pictures: seeded latents, uint8 conversion, grids, PNGs."""

import re

import numpy as np
from PIL import Image

from stylejax.files import write_atomically

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def parse_ranges(text: str, max_count: int = 100_000) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]: the official generate.py's seed syntax (ranges inclusive)."""
    out = []
    for part in text.split(","):
        match = _RANGE.fullmatch(part.strip())
        if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
            raise ValueError(f"bad list {text!r}: use non-negative integers and ascending ranges "
                             "separated by commas, e.g. 0-7,42")
        lo, hi = int(match[1]), int(match[2] or match[1])
        if len(out) + hi - lo + 1 > max_count:
            raise ValueError(f"{text!r} lists more than {max_count} numbers")
        out.extend(range(lo, hi + 1))
    return out


SEED_LIMIT = 2 ** 32  # numpy's RandomState takes seeds below this


def z_from_seeds(seeds, z_dim: int) -> np.ndarray:
    """One latent per seed, drawn exactly as the official generate.py draws it.

    `np.random.RandomState(seed).randn(1, z_dim)`: seed 42 means the same z in
    both implementations.
    """
    return np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds]).astype(np.float32)


GAP_VALUE = 128  # mid grey: apart from black backgrounds and white strokes alike


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats to uint8 pixels as the official code saves them: x * 127.5 + 128, clipped,
    truncated (so a dataset image, k / 127.5 - 1, comes back as exactly k)."""
    return np.clip(np.asarray(images, np.float32) * 127.5 + 128, 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, cols: int, gap: int = 0) -> np.ndarray:
    """[N, H, W, C] uint8 to one image, row-major, blank cells black. `gap` grey pixels between
    cells keep small images on black backgrounds (digits) apart; 0 gives [rows * H, cols * W, C]."""
    n, h, w, c = images.shape
    rows = -(-n // cols)
    cells = np.zeros((rows * cols, h, w, c), images.dtype)
    cells[:n] = images
    framed = np.full((rows, cols, h + gap, w + gap, c), GAP_VALUE, images.dtype)
    framed[:, :, :h, :w] = cells.reshape(rows, cols, h, w, c)
    grid = framed.transpose(0, 2, 1, 3, 4).reshape(rows * (h + gap), cols * (w + gap), c)
    return grid[:grid.shape[0] - gap, :grid.shape[1] - gap]


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """[H, W, C] to [factor H, factor W, C], each pixel a factor x factor block (nearest)."""
    return image.repeat(factor, 0).repeat(factor, 1)


def save_png(image: np.ndarray, path: str) -> None:
    """Writes an [H, W, C] uint8 image (C = 1 or 3), atomically."""
    image = image[..., 0] if image.shape[-1] == 1 else image
    write_atomically(path, lambda f: Image.fromarray(image).save(f, format="PNG"))
