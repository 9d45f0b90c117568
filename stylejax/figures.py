"""Pictures drawn by a trained generator: seed images, style mixing and blending, truncation sweeps.

Every image is drawn alone (batch of one, one device), its latent from its seed as the official
generate.py draws it and its random noise (noise_mode='random') from the seed too. So a seed
means the same image whatever else is drawn with it and on any device count.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from stylejax.errors import UsageError
from stylejax.models import Generator, blend_styles
from stylejax.models.synthesis import check_noise_mode
from stylejax.sampling import make_grid, parse_ranges, to_uint8, z_from_seeds

# The paper's style-mixing groups, as ranges of ws (clipped to the generator's num_ws).
STYLE_GROUPS = {"coarse": (0, 4), "middle": (4, 8), "fine": (8, None)}


def style_layers(spec: str, num_ws: int) -> list[int]:
    """The ws a spec names: 'coarse' (0-3: 4^2-8^2), 'middle' (4-7: 16^2-32^2), 'fine' (8 on:
    64^2 and up), clipped to num_ws, or explicit indices like '0-3' or '0,2,4-5'."""
    resolution = 2 ** (num_ws // 2 + 1)
    if spec in STYLE_GROUPS:
        lo, hi = STYLE_GROUPS[spec]
        layers = list(range(lo, min(num_ws, hi or num_ws)))
    else:
        try:
            layers = parse_ranges(spec)
        except ValueError:
            raise UsageError(f"--styles {spec!r} is neither coarse, middle nor fine (lower case) "
                             f"nor a range of ws such as 0-3 or 0,2,4-5 (this {resolution}x"
                             f"{resolution} generator's ws are 0-{num_ws - 1})") from None
    if not layers or max(layers) >= num_ws:
        raise UsageError(f"--styles {spec!r} names no ws of this {resolution}x{resolution} generator, "
                         f"whose ws are 0-{num_ws - 1}: use coarse, middle, fine or a range within")
    return layers


def check_degrees(degrees: Sequence[float]) -> None:
    """Blend degrees are weights in [0, 1]: 0 keeps the row's styles, 1 copies the column's."""
    for degree in degrees:
        if not 0 <= degree <= 1:
            raise UsageError(f"degree {degree} is outside [0, 1]: 0 keeps the row's styles, 1 "
                             "copies the column's; e.g. --degree 0.5")


def layer_weights(num_ws: int, bands: Sequence[tuple[Sequence[int], float]]) -> np.ndarray:
    """[num_ws] float32 blend weights: each (layers, degree) band's degree on its layers, 0
    elsewhere (the row's styles)."""
    weights = np.zeros(num_ws, np.float32)
    for layers, degree in bands:
        check_degrees([degree])
        weights[list(layers)] = degree
    return weights


class Renderer:
    """Draws images from one generator with fixed options (noise, class, truncation cutoff), in
    jitted batches of `batch` images (the last one padded), so each shape compiles once. psi and
    blend weights are traced: a new value reuses the compiled program."""

    def __init__(self, G: Generator, variables: dict, *, noise_mode: str = "const",
                 class_index: int | None = None, psi: float = 1.0, cutoff: int | None = None,
                 batch: int = 8):
        check_noise_mode(noise_mode)
        if cutoff is not None and not 1 <= cutoff <= G.num_ws:
            raise UsageError(f"truncation cutoff {cutoff} is out of range: use 1..{G.num_ws}, the "
                             "number of ws truncated from the first")
        if batch < 1:
            raise UsageError(f"batch {batch} must be at least 1, e.g. --batch 8")
        self.G, self.variables, self.batch = G, variables, batch
        self.psi, self.cutoff = psi, cutoff
        self.c = self.class_vector(class_index)

        def map_latents(v, z, c, psi):
            c = None if c is None else jnp.broadcast_to(c, (len(z), G.c_dim))
            return G.apply(v, z, c, psi, cutoff, method=G.map_latents)

        def blend_and_synthesize(v, ws_row, ws_col, weights, noise_seeds):
            def one(args):  # each image alone (see the module's doc), in one program per batch
                ws, noise_seed = args
                key = jax.random.fold_in(jax.random.key(0), noise_seed)
                return G.apply(v, ws[None], noise_mode, rngs={"noise": key}, method=G.synthesize)[0]
            return jax.lax.map(one, (blend_styles(ws_row, ws_col, weights), noise_seeds))

        self._map = jax.jit(map_latents)
        self._images = jax.jit(blend_and_synthesize)

    def class_vector(self, class_index: int | None) -> np.ndarray | None:
        """[1, c_dim] one-hot label of a conditional generator (None for an unconditional one)."""
        c_dim = self.G.c_dim
        if c_dim and class_index is None:
            raise UsageError(f"this generator is conditional on {c_dim} classes: pick one with "
                             f"--class 0..{c_dim - 1}")
        if not c_dim and class_index is not None:
            raise UsageError("this generator is unconditional: drop --class")
        if c_dim and not 0 <= class_index < c_dim:
            raise UsageError(f"--class {class_index} is out of range: use 0..{c_dim - 1}")
        return np.eye(c_dim, dtype=np.float32)[[class_index]] if c_dim else None

    def _psi(self, psi: float | None) -> np.float32:
        return np.float32(self.psi if psi is None else psi)

    def latents_ws(self, z: np.ndarray, psi=None, class_index: int | None = None) -> np.ndarray:
        """[N, num_ws, w_dim]: the styles of latents z [N, z_dim], truncated with psi (a number or
        one per latent) and of class `class_index` (the renderer's by default)."""
        psi = np.broadcast_to(np.asarray(self._psi(None) if psi is None else psi, np.float32), len(z))
        c = self.c if class_index is None else self.class_vector(class_index)
        return np.concatenate([np.asarray(self._map(self.variables, zb, c, pb))[:n]
                               for zb, pb, n in self._chunks(z, psi)])

    def styles(self, seeds: Sequence[int], psi=None) -> np.ndarray:
        """[N, num_ws, w_dim]: the seeds' styles (see latents_ws)."""
        return self.latents_ws(z_from_seeds(seeds, self.G.z_dim), psi)

    def blended_images(self, ws_row: np.ndarray, ws_col: np.ndarray, weights: np.ndarray,
                       noise_seeds: Sequence[int]) -> np.ndarray:
        """[N, H, W, C] uint8: blend_styles(ws_row, ws_col, weights [N, num_ws]) drawn with each
        image's random noise, if on, from its noise seed."""
        chunks = self._chunks(ws_row, ws_col, weights, np.asarray(noise_seeds, np.uint32))
        return np.concatenate([to_uint8(self._images(self.variables, *arrays))[:n]
                               for *arrays, n in chunks])

    def images(self, ws: np.ndarray, noise_seeds: Sequence[int]) -> np.ndarray:
        """[N, H, W, C] uint8 from styles [N, num_ws, w_dim]."""
        return self.blended_images(ws, ws, np.zeros(ws.shape[:2], np.float32), noise_seeds)

    def seed_images(self, seeds: Sequence[int], psi=None) -> np.ndarray:
        return self.images(self.styles(seeds, psi), seeds)

    def seeds_blended(self, row_seed: int, col_seed: int, weights: np.ndarray,
                      psi: float | None = None, class_index: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(image [H, W, C] uint8, ws [num_ws, w_dim]): the row seed's styles moved toward the column
        seed's by `weights` [num_ws], noise from the row seed, bit for bit the figures' cell. Two
        jitted calls (the figures' mapping, one image's synthesis), each compiled once: psi,
        weights and class are traced (the renderer's class by default). One fused program was
        rounded differently by XLA (one level off in a few pixels)."""
        ws = self.latents_ws(z_from_seeds([row_seed, col_seed], self.G.z_dim), psi, class_index)
        weights = np.asarray(weights, np.float32)[None]
        image = self._images(self.variables, ws[:1], ws[1:], weights, np.uint32([row_seed]))[0]
        return to_uint8(image), np.asarray(blend_styles(ws[:1], ws[1:], weights))[0]

    def _chunks(self, *arrays: np.ndarray):
        """The arrays cut into batches of self.batch along axis 0, the last padded by repeating its
        last row; yields (*batches, number of real rows)."""
        for start in range(0, len(arrays[0]), self.batch):
            parts = [a[start:start + self.batch] for a in arrays]
            n = len(parts[0])
            yield *(np.concatenate([p, np.repeat(p[-1:], self.batch - n, 0)]) for p in parts), n


def style_mixing_figure(renderer: Renderer, row_seeds: Sequence[int], col_seeds: Sequence[int],
                        layers: Sequence[int], degree: float = 1.0) -> np.ndarray:
    """The paper's figure: column seeds across the top, row seeds down the left, and in cell
    (row, col) the row seed's image with the ws `layers` moved toward the column seed's by
    `degree` (1: copied, as in the paper)."""
    ws_rows, ws_cols = renderer.styles(row_seeds), renderer.styles(col_seeds)
    band = layer_weights(renderer.G.num_ws, [(layers, degree)])
    cols = len(col_seeds)
    # The top row (the columns), then per row seed: its own image and its blends with each column.
    row_ws = np.concatenate([ws_cols] + [np.repeat(ws_rows[i:i + 1], cols + 1, 0)
                                         for i in range(len(row_seeds))])
    col_ws = np.concatenate([ws_cols] + [np.concatenate([ws_rows[i:i + 1], ws_cols])
                                         for i in range(len(row_seeds))])
    weights = np.stack([np.zeros_like(band)] * cols + [w for _ in row_seeds
                                                       for w in [np.zeros_like(band)] + [band] * cols])
    noise_seeds = [*col_seeds] + [r for r in row_seeds for _ in range(cols + 1)]
    cells = renderer.blended_images(row_ws, col_ws, weights, noise_seeds)
    blank = np.zeros_like(cells[:1])
    return make_grid(np.concatenate([blank, cells]), cols + 1)


def blend_figure(renderer: Renderer, row_seed: int, col_seed: int, layers: Sequence[int],
                 degrees: Sequence[float]) -> np.ndarray:
    """One row: the row seed's image with the ws `layers` moved toward the column seed's by each
    degree in turn (0: the row seed's image, 1: the style-mixing figure's cell)."""
    check_degrees(degrees)
    ws = renderer.styles([row_seed, col_seed])
    weights = np.stack([layer_weights(renderer.G.num_ws, [(layers, d)]) for d in degrees])
    n = len(degrees)
    cells = renderer.blended_images(np.repeat(ws[:1], n, 0), np.repeat(ws[1:], n, 0), weights,
                                    [row_seed] * n)
    return make_grid(cells, n)


def truncation_sweep(renderer: Renderer, seeds: Sequence[int], psis: Sequence[float]) -> np.ndarray:
    """One row per seed, one column per psi."""
    row_seeds = [s for s in seeds for _ in psis]
    cells = renderer.images(renderer.styles(row_seeds, np.tile(psis, len(seeds))), row_seeds)
    return make_grid(cells, len(psis))
