"""Operations on per-layer styles ws [N, num_ws, w_dim]: truncation, mixing and blending.

All take traced arguments (psi, cutoff, weights), so one compiled program serves
every value: no Python branching on data.
"""

import jax.numpy as jnp


def num_ws_for(resolution: int) -> int:
    """2 log2(resolution) - 2: two per block, less the 4x4 block's missing conv0, plus the last ToRGB."""
    return 2 * (resolution.bit_length() - 1) - 2


def layer_mask(num_ws: int, cutoff) -> jnp.ndarray:
    """[1, num_ws, 1] boolean, true for layers < cutoff (all layers when cutoff is None)."""
    if cutoff is None:
        return jnp.ones((1, num_ws, 1), bool)
    return (jnp.arange(num_ws) < jnp.asarray(cutoff))[None, :, None]


def truncate(ws: jnp.ndarray, w_avg: jnp.ndarray, psi=1.0, cutoff=None) -> jnp.ndarray:
    """The truncation trick: w_avg + psi (w - w_avg) on layers < cutoff. psi is a number or one
    per image [N], traced or not; psi 1 gives ws exactly, not up to rounding."""
    if isinstance(psi, int | float) and psi == 1:
        return ws
    psi = jnp.reshape(jnp.asarray(psi, ws.dtype), (-1, 1, 1))
    truncated = w_avg + psi * (ws - w_avg)
    return jnp.where(layer_mask(ws.shape[1], cutoff) & (psi != 1), truncated, ws)


def mix_styles(ws_first: jnp.ndarray, ws_second: jnp.ndarray, cutoff) -> jnp.ndarray:
    """Layers < cutoff from ws_first, the rest from ws_second."""
    return jnp.where(layer_mask(ws_first.shape[1], cutoff), ws_first, ws_second)


def blend_styles(ws_row: jnp.ndarray, ws_col: jnp.ndarray, weights) -> jnp.ndarray:
    """Moves each layer of ws_row toward ws_col by its weight in [0, 1] ([num_ws], or [N, num_ws]
    per image): 0 keeps the row's, 1 is the column's exactly (mix_styles' copy)."""
    weights = jnp.asarray(weights, ws_row.dtype)[..., None]
    return (1 - weights) * ws_row + weights * ws_col
