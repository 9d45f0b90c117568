"""Looping animations drawn by a trained generator, streamed to MP4 (H.264, through the ffmpeg that
imageio-ffmpeg ships) or GIF.

An animation moves through keyframes (seeds, psis or degrees) and back to the first, `frames_per_key`
frames from each to the next. Frames are drawn in the renderer's jitted batches and written as they
come, so memory does not grow with the video's length. One noise (the first or row seed's) is used
throughout, so only the styles move.
"""

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence

import imageio.v2 as imageio
import numpy as np
from tqdm import tqdm

from stylejax.errors import UsageError
from stylejax.figures import Renderer, check_degrees, layer_weights
from stylejax.files import atomic_path
from stylejax.sampling import upscale, z_from_seeds

KINDS = ("walk_z", "walk_w", "morph", "truncation", "blend")
FORMATS = ("mp4", "gif")

# (ws_row, ws_col, weights [N, num_ws]) of frames at keyframe `key`, on their way to `next_key` by t.
StylesAt = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Animation:
    """What a video shows: `num_keys` keyframes in a loop and the styles of any point between."""

    num_keys: int
    noise_seed: int
    styles_at: StylesAt


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation from a [N, D] to b [N, D] by t [N]: latents drawn from a Gaussian
    keep their typical length (a straight line through the middle would shrink it). t = 0 gives a."""
    a64, b64, t = a.astype(np.float64), b.astype(np.float64), t[:, None].astype(np.float64)
    cos = np.sum(a64 * b64, 1, keepdims=True) / (np.linalg.norm(a64, axis=1, keepdims=True)
                                                 * np.linalg.norm(b64, axis=1, keepdims=True))
    omega = np.arccos(np.clip(cos, -1, 1))
    sin = np.sin(omega)
    safe = np.where(sin > 1e-6, sin, 1)  # (nearly) parallel latents: a straight line is the arc
    arc = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / safe
    return np.where(sin > 1e-6, arc, a64 + t * (b64 - a64)).astype(np.float32)


def ping_pong(keys: Sequence[float]) -> list[float]:
    """[0, 0.5, 1] -> [0, 0.5, 1, 0.5]: a loop out to the last key and back."""
    return [*keys, *keys[-2:0:-1]]


def _need(count_ok: bool, message: str) -> None:
    if not count_ok:
        raise UsageError(message)


def latent_walk(renderer: Renderer, seeds: Sequence[int]) -> Animation:
    """walk_z: the seeds' latents joined by great circles, each frame mapped (and truncated)."""
    _need(len(seeds) >= 2, "walk_z needs at least two --seeds, e.g. 0-3")
    z = z_from_seeds(seeds, renderer.G.z_dim)

    def styles_at(key, next_key, t):
        ws = renderer.latents_ws(slerp(z[key], z[next_key], t))
        return ws, ws, np.zeros(ws.shape[:2], np.float32)
    return Animation(len(seeds), seeds[0], styles_at)


def style_walk(renderer: Renderer, seeds: Sequence[int]) -> Animation:
    """walk_w: straight lines between the seeds' styles (W is where StyleGAN interpolates)."""
    _need(len(seeds) >= 2, "walk_w needs at least two --seeds, e.g. 0-3")
    ws = renderer.styles(seeds)

    def styles_at(key, next_key, t):
        return ws[key], ws[next_key], np.repeat(t[:, None], ws.shape[1], 1).astype(np.float32)
    return Animation(len(seeds), seeds[0], styles_at)


def style_morph(renderer: Renderer, row_seed: int, col_seeds: Sequence[int],
                layers: Sequence[int]) -> Animation:
    """morph: the row seed's image whose `layers` move from one column seed's to the next."""
    _need(len(col_seeds) >= 2, "morph needs at least two --col_seeds, e.g. 55,821")
    row, cols = renderer.styles([row_seed]), renderer.styles(col_seeds)
    band = layer_weights(renderer.G.num_ws, [(layers, 1.0)])
    keys = np.where(band[None, :, None] > 0, cols, row)  # each column seed's band on the row seed

    def styles_at(key, next_key, t):
        return keys[key], keys[next_key], t[:, None].astype(np.float32) * band
    return Animation(len(col_seeds), row_seed, styles_at)


def truncation_sweep(renderer: Renderer, seed: int, psis: Sequence[float]) -> Animation:
    """truncation: one seed's styles with psi moving through `psis` and back."""
    _need(len(psis) >= 2, "truncation needs at least two --psis, e.g. 1,0")
    keys = np.asarray(ping_pong(psis), np.float32)
    z = z_from_seeds([seed], renderer.G.z_dim)

    def styles_at(key, next_key, t):
        psi = keys[key] + t.astype(np.float32) * (keys[next_key] - keys[key])
        ws = renderer.latents_ws(np.repeat(z, len(t), 0), psi)
        return ws, ws, np.zeros(ws.shape[:2], np.float32)
    return Animation(len(keys), seed, styles_at)


def degree_blend(renderer: Renderer, row_seed: int, col_seed: int, layers: Sequence[int],
                 degrees: Sequence[float]) -> Animation:
    """blend: the row seed's `layers` moving toward the column seed's through `degrees` and back."""
    _need(len(degrees) >= 2, "blend needs at least two --degrees, e.g. 0,1")
    check_degrees(degrees)
    keys = np.asarray(ping_pong(degrees), np.float32)
    ws = renderer.styles([row_seed, col_seed])
    band = layer_weights(renderer.G.num_ws, [(layers, 1.0)])

    def styles_at(key, next_key, t):
        degree = keys[key] + t.astype(np.float32) * (keys[next_key] - keys[key])
        return ws[:1], ws[1:], degree[:, None] * band
    return Animation(len(keys), row_seed, styles_at)


def frame_batches(renderer: Renderer, animation: Animation, frames_per_key: int,
                  factor: int = 1) -> Iterator[np.ndarray]:
    """The video's frames [B, H, W, C] uint8, a renderer batch at a time, each pixel drawn
    factor x factor (nearest)."""
    total = animation.num_keys * frames_per_key
    for start in range(0, total, renderer.batch):
        frame = np.arange(start, min(start + renderer.batch, total))
        key, step = np.divmod(frame, frames_per_key)
        ws_row, ws_col, weights = animation.styles_at(key, (key + 1) % animation.num_keys,
                                                      (step / frames_per_key).astype(np.float32))
        ws_row, ws_col = (np.broadcast_to(ws, (len(frame), *ws.shape[1:])) for ws in (ws_row, ws_col))
        images = renderer.blended_images(ws_row, ws_col, weights, [animation.noise_seed] * len(frame))
        yield np.stack([upscale(image, factor) for image in images])


def write_video(path: str, batches: Iterator[np.ndarray], total: int, fps: float) -> None:
    """Writes the frames as they come to `path` (.mp4: H.264; .gif: looping), atomically, with a
    progress bar of frames/s and the time left."""
    extension = os.path.splitext(path)[1]
    options = dict(fps=fps, codec="libx264", macro_block_size=1, quality=8) if extension == ".mp4" \
        else dict(duration=1000 / fps, loop=0)
    with atomic_path(path, extension) as tmp, imageio.get_writer(tmp, mode="I", **options) as writer, \
            tqdm(total=total, unit="frame", desc=os.path.basename(path)) as bar:
        for batch in batches:
            for frame in batch:
                writer.append_data(np.repeat(frame, 3, -1) if frame.shape[-1] == 1 else frame)
            bar.update(len(batch))
