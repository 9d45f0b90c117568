"""Pictures drawn by a trained generator: seed images, style mixing, truncation sweeps, interpolations.

Every image is drawn alone (batch of one, one device), its latent from its seed as the official
generate.py draws it and its random noise (noise_mode='random') from the seed too. So a seed
means the same image whatever else is drawn with it and on any device count.
"""

from collections.abc import Sequence
from functools import partial

import jax
import numpy as np

from stylejax.errors import UsageError
from stylejax.models import Generator
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


class Renderer:
    """Draws single images from one generator with fixed options (noise, class, truncation)."""

    def __init__(self, G: Generator, variables: dict, *, noise_mode: str = "const",
                 class_index: int | None = None, psi: float = 1.0, cutoff: int | None = None):
        check_noise_mode(noise_mode)
        if G.c_dim and class_index is None:
            raise UsageError(f"this generator is conditional on {G.c_dim} classes: pick one with "
                             f"--class 0..{G.c_dim - 1}")
        if not G.c_dim and class_index is not None:
            raise UsageError("this generator is unconditional: drop --class")
        if G.c_dim and not 0 <= class_index < G.c_dim:
            raise UsageError(f"--class {class_index} is out of range: use 0..{G.c_dim - 1}")
        if cutoff is not None and not 1 <= cutoff <= G.num_ws:
            raise UsageError(f"truncation cutoff {cutoff} is out of range: use 1..{G.num_ws}, the "
                             "number of ws truncated from the first")
        self.G, self.variables = G, variables
        self.psi, self.cutoff = psi, cutoff
        self.c = np.eye(G.c_dim, dtype=np.float32)[[class_index]] if G.c_dim else None
        self._map = jax.jit(partial(G.apply, method=G.map_latents),
                            static_argnames=("truncation_psi", "truncation_cutoff"))
        self._synthesize = jax.jit(lambda v, ws, key: G.apply(
            v, ws, noise_mode, rngs={"noise": key}, method=G.synthesize))

    def ws(self, seed: int, psi: float | None = None) -> np.ndarray:
        """[num_ws, w_dim]: the seed's styles, truncated with `psi` (the renderer's by default)."""
        z = z_from_seeds([seed], self.G.z_dim)
        psi = self.psi if psi is None else psi
        return np.asarray(self._map(self.variables, z, self.c, truncation_psi=psi,
                                    truncation_cutoff=self.cutoff))[0]

    def image(self, ws: np.ndarray, noise_seed: int) -> np.ndarray:
        """[H, W, C] uint8 from styles [num_ws, w_dim]; random noise, if on, drawn from noise_seed."""
        key = jax.random.fold_in(jax.random.key(0), noise_seed)
        return to_uint8(self._synthesize(self.variables, ws[None], key))[0]

    def seed_image(self, seed: int, psi: float | None = None) -> np.ndarray:
        return self.image(self.ws(seed, psi), seed)


def style_mixing_figure(renderer: Renderer, row_seeds: Sequence[int], col_seeds: Sequence[int],
                        layers: Sequence[int]) -> np.ndarray:
    """The paper's figure: column seeds across the top, row seeds down the left, and in cell
    (row, col) the row seed's image with the ws `layers` copied from the column seed."""
    ws = {s: renderer.ws(s) for s in {*row_seeds, *col_seeds}}
    blank = np.zeros_like(renderer.image(ws[col_seeds[0]], col_seeds[0]))
    cells = [blank] + [renderer.image(ws[c], c) for c in col_seeds]
    for r in row_seeds:
        cells.append(renderer.image(ws[r], r))
        for c in col_seeds:
            mixed = ws[r].copy()
            mixed[list(layers)] = ws[c][list(layers)]
            cells.append(renderer.image(mixed, r))
    return make_grid(np.stack(cells), len(col_seeds) + 1)


def truncation_sweep(renderer: Renderer, seeds: Sequence[int], psis: Sequence[float]) -> np.ndarray:
    """One row per seed, one column per psi."""
    cells = [renderer.seed_image(s, psi) for s in seeds for psi in psis]
    return make_grid(np.stack(cells), len(psis))


def interpolation_frames(renderer: Renderer, seeds: Sequence[int], frames: int) -> list[np.ndarray]:
    """A closed loop through the seeds' ws, `frames` frames from each seed to the next; one
    noise (the first seed's) throughout, so only the styles move."""
    ws = [renderer.ws(s) for s in seeds]
    out = []
    for a, b in zip(ws, ws[1:] + ws[:1], strict=True):
        for t in np.arange(frames) / frames:
            out.append(renderer.image(a + np.float32(t) * (b - a), seeds[0]))
    return out
