"""Perceptual path length (Karras et al. 2019), as stylegan2-ada-pytorch measures it.

A pair of latents (z0, z1) is drawn; the path between them is cut at t (uniform in [0, 1] for
'full' sampling, 0 for 'end') and t + epsilon, in W (linear interpolation of the mapped ws) or
in Z (spherical interpolation, then mapping). The two images are made with the same noise,
centre-cropped for face data, box-downsampled to 256 when larger, and their LPIPS distance /
epsilon^2 is one sample. PPL is the mean of the samples between the 1st and the 99th percentile.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

MAX_RESOLUTION = 256  # larger images are box-downsampled to this before LPIPS


@dataclasses.dataclass(frozen=True)
class PathLength:
    """One PPL variant: `space` 'w' or 'z', `sampling` 'end' or 'full'."""

    space: str
    sampling: str
    epsilon: float = 1e-4

    def endpoints(self, key: jax.Array, n: int, z_dim: int) -> tuple[jnp.ndarray, ...]:
        """(t [n], z0 [n, z_dim], z1 [n, z_dim]) of n paths."""
        t_key, z_key = jax.random.split(key)
        t = jax.random.uniform(t_key, (n,)) * (1.0 if self.sampling == "full" else 0.0)
        z0, z1 = jax.random.normal(z_key, (2, n, z_dim))
        return t, z0, z1

    def latents(self, t: jnp.ndarray, z0: jnp.ndarray, z1: jnp.ndarray,
                mapping: Callable[[jnp.ndarray], jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The ws at t and t + epsilon along each path."""
        if self.space == "w":
            w0, w1 = jnp.split(mapping(jnp.concatenate([z0, z1])), 2)
            step = lambda s: w0 + (w1 - w0) * s.reshape((-1,) + (1,) * (w0.ndim - 1))  # noqa: E731
            return step(t), step(t + self.epsilon)
        wt = mapping(jnp.concatenate([slerp(z0, z1, t), slerp(z0, z1, t + self.epsilon)]))
        return tuple(jnp.split(wt, 2))

    def distances(self, t: jnp.ndarray, z0: jnp.ndarray, z1: jnp.ndarray,
                  mapping: Callable[[jnp.ndarray], jnp.ndarray],
                  synthesis: Callable[[jnp.ndarray], jnp.ndarray],
                  distance: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray],
                  crop: bool) -> jnp.ndarray:
        """The PPL samples [n]: distance(image at t, image at t + epsilon) / epsilon^2, the
        images (NHWC) made in one batch by `synthesis`."""
        wt0, wt1 = self.latents(t, z0, z1, mapping)
        images = prepare_images(synthesis(jnp.concatenate([wt0, wt1])), crop)
        x0, x1 = jnp.split(images, 2)
        return distance(x0, x1) / self.epsilon ** 2


def slerp(a: jnp.ndarray, b: jnp.ndarray, t: jnp.ndarray) -> jnp.ndarray:
    """Spherical interpolation of unit directions, a unit vector per row."""
    unit = lambda v: v / jnp.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    a, b = unit(a), unit(b)
    d = jnp.sum(a * b, axis=-1, keepdims=True)
    angle = t[:, None] * jnp.arccos(jnp.clip(d, -1, 1))
    c = unit(b - d * a)
    return unit(a * jnp.cos(angle) + c * jnp.sin(angle))


def prepare_images(images: jnp.ndarray, crop: bool) -> jnp.ndarray:
    """The official centre crop (rows 3/8 to 7/8, columns 2/8 to 6/8: a face), box
    downsampling by the generator's resolution // MAX_RESOLUTION, and grey images as RGB."""
    factor = images.shape[1] // MAX_RESOLUTION
    if crop:
        c = images.shape[1] // 8
        images = images[:, c * 3:c * 7, c * 2:c * 6]
    if factor > 1:
        n, h, w, ch = images.shape
        images = images.reshape(n, h // factor, factor, w // factor, factor, ch).mean(axis=(2, 4))
    if images.shape[-1] == 1:
        images = jnp.repeat(images, 3, axis=-1)
    return images


def filtered_mean(samples: np.ndarray) -> float:
    """The mean of the samples between the 1st percentile (rounded down to a sample) and the
    99th (rounded up), as the official PPL."""
    samples = np.asarray(samples, np.float64)
    lo = np.percentile(samples, 1, method="lower")
    hi = np.percentile(samples, 99, method="higher")
    return float(samples[(samples >= lo) & (samples <= hi)].mean())


PATH_LENGTHS = {
    "ppl_wend": PathLength("w", "end"),
    "ppl_zfull": PathLength("z", "full"),
}
