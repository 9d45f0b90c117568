"""Adaptive discriminator augmentation (Karras et al. 2020, stylegan2-ada-pytorch's AugmentPipe)
as lax ops on NHWC batches in [-1, 1], inside the compiled train step.

Every transform is drawn per image with probability p times its multiplier, from the official
parameter distributions.  `draw` makes a batch's parameters from a key and `apply` executes them,
so that a phase can draw for its whole batch and run it in rounds.  An image no transform touched
comes out bit for bit as it went in (p = 0 changes nothing), and a batch none touched skips the
work.  The pixel blits (x-flip, 90-degree rotation, integer translation) are exact gathers; the
general geometric transforms resample through a 2x upsampled, sym6-filtered image with reflect
padding, as the official pipe does.  Differentiable in the images (G trains through it, R1 takes
its gradient through it).
"""

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from stylejax.models.resample import setup_filter, upfirdn2d, upsample2d

# Wavelet decomposition low-pass filters (Daubechies' symlets), as the official pipe uses them.
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)

BLIT = dict(xflip=1, rotate90=1, xint=1)
GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
# The official --augpipe presets: each transform's probability multiplier.
PIPES = {
    "blit": BLIT, "geom": GEOM, "color": COLOR, "filter": dict(imgfilter=1), "noise": dict(noise=1),
    "cutout": dict(cutout=1), "bg": {**BLIT, **GEOM}, "bgc": {**BLIT, **GEOM, **COLOR},
    "bgcf": {**BLIT, **GEOM, **COLOR, "imgfilter": 1},
    "bgcfn": {**BLIT, **GEOM, **COLOR, "imgfilter": 1, "noise": 1},
    "bgcfnc": {**BLIT, **GEOM, **COLOR, "imgfilter": 1, "noise": 1, "cutout": 1},
}
FILTER_BAND_POWER = np.array([10, 1, 1, 1]) / 13  # the expected power per band (1/f spectrum)
LUMA = np.array([1, 1, 1, 0]) / np.sqrt(3)  # the luma axis, homogeneous
UNIFORMS, NORMALS = 40, 16  # per image, at most: what the pipe with every transform draws


def filter_bank(lowpass: tuple[float, ...] = SYM2, bands: int = 4) -> np.ndarray:
    """[bands, taps]: band-pass filters that sum to a unit impulse, octave by octave from the
    lowest band, built from a wavelet's low-pass H(z) and high-pass H(-z)."""
    lo = np.asarray(lowpass)
    hi = lo * (-1.0) ** np.arange(lo.size)
    lo2, hi2 = np.convolve(lo, lo[::-1]) / 2, np.convolve(hi, hi[::-1]) / 2
    bank = np.eye(bands, 1)
    for band in range(1, bands):
        spread = np.zeros((bands, bank.shape[1] * 2 - 1))
        spread[:, ::2] = bank  # one octave down: zero insertion
        bank = np.stack([np.convolve(row, lo2) for row in spread])
        start = (bank.shape[1] - hi2.size) // 2
        bank[band, start:start + hi2.size] += hi2
    return bank.astype(np.float32)


def matrices(rows: list[list]) -> jnp.ndarray:
    """[B, n, n] from rows of per-image [B] arrays and constants ([n, n] from constants alone)."""
    batch = jnp.broadcast_shapes(*(jnp.shape(x) for row in rows for x in row))
    return jnp.stack([jnp.stack([jnp.broadcast_to(jnp.asarray(x, jnp.float32), batch) for x in row], -1)
                      for row in rows], -2)


def translate2d(tx, ty):
    return matrices([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def scale2d(sx, sy):
    return matrices([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def rotate2d(cos, sin):
    return matrices([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])


def translate3d(t):
    return matrices([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]])


def scale3d(s):
    return matrices([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]])


def rotate3d(axis: np.ndarray, theta: jnp.ndarray) -> jnp.ndarray:
    """[B, 4, 4]: rotation by theta about a unit axis (Rodrigues' formula)."""
    x, y, z = axis[:3]
    s, c = jnp.sin(theta), jnp.cos(theta)
    cc = 1 - c
    return matrices([[x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0],
                     [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0],
                     [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0],
                     [0, 0, 0, 1]])


def reflect(index: jnp.ndarray, size: int) -> jnp.ndarray:
    """Indices mirrored into [0, size) about the edge pixels (numpy's and torch's 'reflect')."""
    period = 2 * (size - 1)
    index = jnp.mod(index, period)
    return jnp.where(index < size, index, period - index)


def centered_grid(height: int, width: int) -> jnp.ndarray:
    """[3, H*W] homogeneous pixel centres (x, y, 1), relative to the image centre."""
    y, x = np.mgrid[:height, :width].astype(np.float32)
    return jnp.asarray(np.stack([x.ravel() - (width - 1) / 2, y.ravel() - (height - 1) / 2,
                                 np.ones(height * width, np.float32)]))


def gather_pixels(images: jnp.ndarray, y: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """images[b, y[b, k], x[b, k]] for int [B, K] indices: [B, K, C]."""
    flat = images.reshape(images.shape[0], -1, images.shape[-1])
    index = (y * images.shape[2] + x)[..., None]
    return jnp.take_along_axis(flat, index, axis=1, mode="clip")


def blit(images: jnp.ndarray, g_inv: jnp.ndarray) -> jnp.ndarray:
    """Output pixel q reads input pixel g_inv @ q (integer maps, centred), mirrored at the edges."""
    b, h, w, c = images.shape
    src = g_inv @ centered_grid(h, w)  # exact: integers and halves
    x = reflect(jnp.round(src[:, 0] + (w - 1) / 2).astype(jnp.int32), w)
    y = reflect(jnp.round(src[:, 1] + (h - 1) / 2).astype(jnp.int32), h)
    return gather_pixels(images, y, x).reshape(b, h, w, c)


def bilinear(images: jnp.ndarray, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """images sampled at float pixel coordinates [B, K] (x, y), zero outside (grid_sample's
    bilinear, zeros padding): [B, K, C]."""
    _, h, w, _ = images.shape
    x0, y0 = jnp.floor(x), jnp.floor(y)
    out = 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - jnp.abs(x - xi)) * (1 - jnp.abs(y - yi))
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            pixels = gather_pixels(images, yi.astype(jnp.int32), xi.astype(jnp.int32))
            out = out + pixels * jnp.where(inside, weight, 0.0)[..., None]
    return out


def warp(images: jnp.ndarray, g_inv: jnp.ndarray, taps: tuple[float, ...] = SYM6) -> jnp.ndarray:
    """Output pixel q reads input point g_inv @ q (centred pixel units): reflect-padded by the
    most the official pipe pads (size - 1), upsampled 2x through the low-pass filter, sampled
    bilinearly, filtered and downsampled back."""
    b, h, w, c = images.shape
    f = setup_filter(taps)
    pad = f.size // 4  # the filter's reach, in input pixels
    padded = jnp.pad(images, ((0, 0), (h - 1, h - 1), (w - 1, w - 1), (0, 0)), mode="reflect")
    up = upsample2d(padded, f)
    # In the 2x image, centred coordinates scale by 2 and the filter's phase moves them by -1/2.
    g_up = translate2d(-0.5, -0.5) @ scale2d(2, 2) @ g_inv @ scale2d(0.5, 0.5) @ translate2d(0.5, 0.5)
    out_h, out_w = (h + 2 * pad) * 2, (w + 2 * pad) * 2
    src = g_up @ centered_grid(out_h, out_w)
    x = src[:, 0] + (up.shape[2] - 1) / 2
    y = src[:, 1] + (up.shape[1] - 1) / 2
    sampled = bilinear(up, lax.stop_gradient(x), lax.stop_gradient(y)).reshape(b, out_h, out_w, c)
    crop = 2 * pad
    return upfirdn2d(sampled, f[::-1], down=2, padding=((f.size - 1) // 2 - crop, (f.size - 2) // 2 - crop))


def color_transform(images: jnp.ndarray, matrix: jnp.ndarray) -> jnp.ndarray:
    """[B, 4, 4] homogeneous colour matrices applied to RGB, or their mean row to greyscale."""
    c = images.shape[-1]
    if c == 3:
        return jnp.einsum("bij,bhwj->bhwi", matrix[:, :3, :3], images) + matrix[:, None, None, :3, 3]
    if c == 1:
        row = jnp.mean(matrix[:, :3, :], axis=1)
        return images * jnp.sum(row[:, :3], -1)[:, None, None, None] + row[:, 3][:, None, None, None]
    raise ValueError(f"colour augmentation needs RGB or greyscale images, got {c} channels")


def image_filter(images: jnp.ndarray, taps: jnp.ndarray) -> jnp.ndarray:
    """Each image filtered separably by its own symmetric [B, T] taps, reflect-padded: one
    depthwise convolution per axis over the images' channels side by side."""
    b, h, w, c = images.shape
    half = taps.shape[1] // 2
    x = jnp.pad(images, ((0, 0), (half, half), (half, half), (0, 0)), mode="reflect")
    x = x.transpose(1, 2, 0, 3).reshape(1, h + 2 * half, w + 2 * half, b * c)
    kernel = jnp.repeat(taps, c, axis=0).T  # [T, B * C]
    for shape in ((-1, 1, 1, b * c), (1, -1, 1, b * c)):
        x = lax.conv_general_dilated(x, kernel.reshape(shape), (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=b * c)
    return x.reshape(h, w, b, c).transpose(2, 0, 1, 3)


def where_images(mask: jnp.ndarray, new: jnp.ndarray, old: jnp.ndarray) -> jnp.ndarray:
    return jnp.where(mask[:, None, None, None], new, old)


def only_where(mask: jnp.ndarray, transform: Callable[[jnp.ndarray], jnp.ndarray],
               images: jnp.ndarray) -> jnp.ndarray:
    """transform(images) for the masked images, the others as they are; skipped when none is."""
    return lax.cond(jnp.any(mask), lambda x: where_images(mask, transform(x), x), lambda x: x, images)


class _Randoms:
    """A batch's random numbers, handed out column by column in the order the transforms ask:
    all in two draws, since one random op per transform made the draw the slowest part of the
    step to compile."""

    def __init__(self, uniform_key: jax.Array, normal_key: jax.Array, p: jnp.ndarray, batch: int):
        self.p = p
        self._uniforms = iter(jax.random.uniform(uniform_key, (UNIFORMS, batch)))
        self._normals = iter(jax.random.normal(normal_key, (NORMALS, batch)))

    def rand(self, n: int | None = None) -> jnp.ndarray:
        """In [0, 1): [B], or [B, n] for n columns."""
        return next(self._uniforms) if n is None else jnp.stack([next(self._uniforms) for _ in range(n)], -1)

    def uniform(self, n: int | None = None) -> jnp.ndarray:
        """In [-1, 1)."""
        return self.rand(n) * 2 - 1

    def normal(self, n: int | None = None) -> jnp.ndarray:
        return next(self._normals) if n is None else jnp.stack([next(self._normals) for _ in range(n)], -1)

    def chance(self, multiplier: float) -> jnp.ndarray:
        """Whether each image gets a transform of this multiplier."""
        return self.rand() < multiplier * self.p


def _compose(steps: list[tuple[jnp.ndarray, jnp.ndarray]], size: int, batch: int,
             forward: bool = False) -> tuple[jnp.ndarray, jnp.ndarray]:
    """[B, size, size]: the steps' matrices chained in the order drawn (an inverse map takes each
    new one on the right, a forward map on the left), and [B] whether any step touched the image."""
    matrix, on = jnp.broadcast_to(jnp.eye(size), (batch, size, size)), jnp.zeros(batch, bool)
    for step, hit in steps:
        matrix, on = (step @ matrix if forward else matrix @ step), on | hit
    return matrix, on


@dataclasses.dataclass(frozen=True)
class AugmentPipe:
    """The official pipe: probability multipliers (0: off) and parameter spreads."""

    xflip: float = 0
    rotate90: float = 0
    xint: float = 0
    xint_max: float = 0.125  # of the image size
    scale: float = 0
    rotate: float = 0
    aniso: float = 0
    xfrac: float = 0
    scale_std: float = 0.2  # log2
    rotate_max: float = 1  # 1: the full circle
    aniso_std: float = 0.2  # log2
    xfrac_std: float = 0.125  # of the image size
    brightness: float = 0
    contrast: float = 0
    lumaflip: float = 0
    hue: float = 0
    saturation: float = 0
    brightness_std: float = 0.2
    contrast_std: float = 0.5  # log2
    hue_max: float = 1  # 1: the full circle
    saturation_std: float = 1  # log2
    imgfilter: float = 0
    imgfilter_bands: tuple[float, ...] = (1, 1, 1, 1)
    imgfilter_std: float = 1  # log2
    noise: float = 0
    cutout: float = 0
    noise_std: float = 0.1
    cutout_size: float = 0.5  # of the image size

    def draw(self, key: jax.Array, p: jnp.ndarray, shape: tuple[int, ...]) -> dict[str, jnp.ndarray]:
        """The parameters of a batch of `shape` [B, H, W, C], each a [B, ...] array (rounds slice
        them like the images)."""
        uniform_key, normal_key, noise_key = jax.random.split(key, 3)
        randoms = _Randoms(uniform_key, normal_key, p, shape[0])
        # The stages share the random columns: reordering them changes every image's draw.
        return {**self._draw_blit(randoms, shape), **self._draw_geometric(randoms, shape),
                **self._draw_colour(randoms, shape), **self._draw_filter(randoms, shape),
                **self._draw_noise_cutout(randoms, noise_key, shape)}

    def _draw_blit(self, randoms: _Randoms, shape: tuple[int, ...]) -> dict[str, jnp.ndarray]:
        b, h, w, _ = shape
        steps = []
        if self.xflip:
            flip = jnp.floor(randoms.rand() * 2) * randoms.chance(self.xflip)
            steps.append((scale2d(1 - 2 * flip, 1), flip > 0))
        if self.rotate90:
            quarter = (jnp.floor(randoms.rand() * 4) * randoms.chance(self.rotate90)).astype(jnp.int32)
            cos, sin = jnp.array([1, 0, -1, 0])[quarter], jnp.array([0, 1, 0, -1])[quarter]
            steps.append((rotate2d(cos, sin), quarter > 0))
        if self.xint:
            shift = randoms.uniform(2) * self.xint_max * jnp.array([w, h])
            t = jnp.round(shift) * randoms.chance(self.xint)[:, None]
            steps.append((translate2d(-t[:, 0], -t[:, 1]), jnp.any(t != 0, -1)))
        blit_inv, blit_on = _compose(steps, 3, b)
        return dict(blit_inv=blit_inv, blit_on=blit_on)

    def _draw_geometric(self, randoms: _Randoms, shape: tuple[int, ...]) -> dict[str, jnp.ndarray]:
        b, h, w, _ = shape
        p_rot = 1 - jnp.sqrt(jnp.clip(1 - self.rotate * randoms.p, 0, 1))  # P(pre or post) = rotate * p
        steps = []
        if self.scale:
            on = randoms.chance(self.scale)
            s = jnp.where(on, jnp.exp2(randoms.normal() * self.scale_std), 1.0)
            steps.append((scale2d(1 / s, 1 / s), on))
        if self.rotate:
            steps.append(self._draw_rotation(randoms, p_rot))
        if self.aniso:
            on = randoms.chance(self.aniso)
            s = jnp.where(on, jnp.exp2(randoms.normal() * self.aniso_std), 1.0)
            steps.append((scale2d(1 / s, s), on))
        if self.rotate:
            steps.append(self._draw_rotation(randoms, p_rot))
        if self.xfrac:
            on = randoms.chance(self.xfrac)
            t = jnp.where(on[:, None], randoms.normal(2) * self.xfrac_std * jnp.array([w, h]), 0.0)
            steps.append((translate2d(-t[:, 0], -t[:, 1]), on))
        geom_inv, geom_on = _compose(steps, 3, b)
        return dict(geom_inv=geom_inv, geom_on=geom_on)

    def _draw_rotation(self, randoms: _Randoms, p_rot: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        on = randoms.rand() < p_rot
        theta = jnp.where(on, randoms.uniform() * math.pi * self.rotate_max, 0.0)
        return rotate2d(jnp.cos(theta), jnp.sin(theta)), on

    def _draw_colour(self, randoms: _Randoms, shape: tuple[int, ...]) -> dict[str, jnp.ndarray]:
        """C @ (r, g, b, 1) -> the new colour; hue and saturation only where there is colour."""
        b, _, _, c = shape
        luma = jnp.asarray(np.outer(LUMA, LUMA), jnp.float32)
        steps = []
        if self.brightness:
            on = randoms.chance(self.brightness)
            steps.append((translate3d(jnp.where(on, randoms.normal() * self.brightness_std, 0.0)), on))
        if self.contrast:
            on = randoms.chance(self.contrast)
            steps.append((scale3d(jnp.where(on, jnp.exp2(randoms.normal() * self.contrast_std), 1.0)), on))
        if self.lumaflip:
            flip = jnp.floor(randoms.rand() * 2) * randoms.chance(self.lumaflip)
            steps.append((jnp.eye(4) - 2 * luma * flip[:, None, None], flip > 0))  # Householder reflection
        if self.hue and c > 1:
            on = randoms.chance(self.hue)
            steps.append((rotate3d(LUMA, jnp.where(on, randoms.uniform() * math.pi * self.hue_max, 0.0)), on))
        if self.saturation and c > 1:
            on = randoms.chance(self.saturation)
            s = jnp.where(on, jnp.exp2(randoms.normal() * self.saturation_std), 1.0)
            steps.append((luma + (jnp.eye(4) - luma) * s[:, None, None], on))
        color, color_on = _compose(steps, 4, b, forward=True)
        return dict(color=color, color_on=color_on)

    def _draw_filter(self, randoms: _Randoms, shape: tuple[int, ...]) -> dict[str, jnp.ndarray]:
        """Per-band gains, each band's change renormalised to keep the expected power."""
        b = shape[0]
        gains, filter_on = jnp.ones((b, len(self.imgfilter_bands))), jnp.zeros(b, bool)
        if self.imgfilter:
            power = jnp.asarray(FILTER_BAND_POWER, jnp.float32)
            for band, strength in enumerate(self.imgfilter_bands):
                on = randoms.chance(self.imgfilter * strength)
                gain = jnp.where(on, jnp.exp2(randoms.normal() * self.imgfilter_std), 1.0)
                t = jnp.ones_like(gains).at[:, band].set(gain)
                gains = gains * t / jnp.sqrt(jnp.sum(power * t ** 2, -1, keepdims=True))
                filter_on = filter_on | on
        return dict(filter_gains=gains, filter_on=filter_on)

    def _draw_noise_cutout(self, randoms: _Randoms, noise_key: jax.Array,
                           shape: tuple[int, ...]) -> dict[str, jnp.ndarray]:
        """The cutout centre is drawn even with cutout off, as the last columns."""
        b = shape[0]
        sigma = jnp.zeros(b)
        if self.noise:
            sigma = jnp.where(randoms.chance(self.noise), jnp.abs(randoms.normal()) * self.noise_std, 0.0)
        noise = jax.random.normal(noise_key, shape) if self.noise else None
        cutout = jnp.zeros(b)
        if self.cutout:
            cutout = jnp.where(randoms.chance(self.cutout), self.cutout_size, 0.0)
        return dict(noise_sigma=sigma, noise=noise, cutout_size=cutout, cutout_center=randoms.rand(2))

    def apply(self, images: jnp.ndarray, draws: dict[str, jnp.ndarray]) -> jnp.ndarray:
        """The drawn transforms, in the official order: blit, geometric, colour, filter, noise,
        cutout."""
        _, h, w, _ = images.shape
        if self.xflip or self.rotate90 or self.xint:
            images = only_where(draws["blit_on"], lambda x: blit(x, draws["blit_inv"]), images)
        if self.scale or self.rotate or self.aniso or self.xfrac:
            images = only_where(draws["geom_on"], lambda x: warp(x, draws["geom_inv"]), images)
        if self.brightness or self.contrast or self.lumaflip or self.hue or self.saturation:
            images = only_where(draws["color_on"], lambda x: color_transform(x, draws["color"]), images)
        if self.imgfilter:
            bank = jnp.asarray(filter_bank(SYM2, len(self.imgfilter_bands)))
            images = only_where(draws["filter_on"],
                                lambda x: image_filter(x, draws["filter_gains"] @ bank), images)
        if self.noise:
            sigma = draws["noise_sigma"]
            images = where_images(sigma > 0, images + draws["noise"] * sigma[:, None, None, None], images)
        if self.cutout:
            size, center = draws["cutout_size"], draws["cutout_center"]
            x = (jnp.arange(w) + 0.5) / w
            y = (jnp.arange(h) + 0.5) / h
            outside_x = jnp.abs(x[None, :] - center[:, :1]) >= size[:, None] / 2  # [B, W]
            outside_y = jnp.abs(y[None, :] - center[:, 1:]) >= size[:, None] / 2  # [B, H]
            keep = outside_x[:, None, :] | outside_y[:, :, None]
            images = images * keep[..., None].astype(images.dtype)
        return images

    def __call__(self, images: jnp.ndarray, p: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
        return self.apply(images, self.draw(key, p, images.shape))


def augment_pipe(name: str) -> AugmentPipe:
    """One of the official presets by name (PIPES)."""
    return AugmentPipe(**PIPES[name])


def adjust_p(p: jnp.ndarray, mean_sign: jnp.ndarray, target: float, images: int,
             kimg: float) -> jnp.ndarray:
    """ADA's step: p moves by sign(r_t - target) * images / (kimg * 1000), never below 0."""
    return jnp.maximum(p + jnp.sign(mean_sign - target) * images / (kimg * 1000), 0.0)
