"""Turning generator outputs into pictures: seeded latents, uint8 conversion, grids, PNGs."""

import os

import numpy as np
from PIL import Image


def z_from_seeds(seeds, z_dim: int) -> np.ndarray:
    """One latent per seed, drawn exactly as the official generate.py draws it.

    `np.random.RandomState(seed).randn(1, z_dim)`: seed 42 means the same z in
    both implementations.
    """
    return np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds]).astype(np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats to uint8 pixels, the official scaling (x * 127.5 + 128, clipped)."""
    return np.clip(np.rint(np.asarray(images, np.float32) * 127.5 + 128), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, cols: int) -> np.ndarray:
    """[N, H, W, C] uint8 to one [rows * H, cols * W, C] image, row-major, blank cells black."""
    n, h, w, c = images.shape
    rows = -(-n // cols)
    padded = np.zeros((rows * cols, h, w, c), images.dtype)
    padded[:n] = images
    return padded.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def save_png(image: np.ndarray, path: str) -> None:
    """Writes an [H, W, C] uint8 image (C = 1 or 3); written to a temporary name, then renamed."""
    image = image[..., 0] if image.shape[-1] == 1 else image
    tmp = f"{path}.tmp"
    Image.fromarray(image).save(tmp, format="PNG")
    os.replace(tmp, path)
