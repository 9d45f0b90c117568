"""Progressive growing (StyleGAN, NVlabs/stylegan training_loop.py): the level of detail as a
pure function of the step, and the reals faded to it.

lod 0 is full resolution; lod k + t shows resolution / 2^k faded toward resolution / 2^(k+1) by t.
The schedule starts at `initial_resolution`, trains each resolution for `training_kimg` thousand
images, then fades the next one in over `transition_kimg`. As it depends on the step alone, a
run resumed in the middle of a fade continues it exactly.
"""

import math

import jax.numpy as jnp
import ml_collections
from jax import lax

from stylejax.models.stylegan1 import downscale2d, upscale2d


def growing(config: ml_collections.ConfigDict) -> bool:
    """Whether the run grows progressively (a config.json from before the key does not)."""
    progressive = config.get("progressive")
    return progressive is not None and progressive.enabled


def lod_kwargs(config: ml_collections.ConfigDict, step) -> dict:
    """{'lod': the step's level of detail} for G.synthesize / D when growing, else {} (StyleGAN2's
    networks take no lod)."""
    return {"lod": lod_at(config, step)} if growing(config) else {}


def lod_at(config: ml_collections.ConfigDict, step) -> jnp.ndarray:
    """The official training_schedule's lod after `step` steps of config.batch_size images (step a
    Python or traced integer)."""
    p = config.progressive
    kimg = jnp.asarray(step, jnp.float32) * (config.batch_size / 1000.0)
    phase = p.training_kimg + p.transition_kimg
    index = jnp.floor(kimg / phase)
    fading = jnp.maximum(kimg - index * phase - p.training_kimg, 0.0)
    lod = math.log2(config.resolution) - math.log2(p.initial_resolution) - index
    if p.transition_kimg > 0:
        lod = lod - fading / p.transition_kimg
    return jnp.maximum(lod, 0.0)


def _level(x: jnp.ndarray, k: int) -> jnp.ndarray:
    """x box-filtered to resolution / 2^k and shown at full size (nearest)."""
    return upscale2d(downscale2d(x, 2 ** k), 2 ** k) if k else x


def fade_reals(x: jnp.ndarray, lod) -> jnp.ndarray:
    """Reals [N, H, W, C] as the official process_reals shows them at `lod` (traced): level
    floor(lod) faded toward the next coarser one by its fraction, at full size."""
    top = int(math.log2(x.shape[1]))
    k = jnp.floor(lod)
    t = (lod - k).astype(x.dtype)
    branches = [lambda x, t, j=j: _level(x, j) + (_level(x, j + 1) - _level(x, j)) * t
                for j in range(top - 2)] + [lambda x, t: _level(x, top - 2)]
    return lax.switch(jnp.clip(k.astype(jnp.int32), 0, top - 2), branches, x, t)


def lod_changes_level(config: ml_collections.ConfigDict, step) -> jnp.ndarray:
    """Whether `step` starts or ends a fade: floor or ceil of the lod differs from the step
    before's. The official training resets both Adam states there (reset_opt_for_new_lod)."""
    before, now = lod_at(config, step - 1), lod_at(config, step)
    changed = (jnp.floor(before) != jnp.floor(now)) | (jnp.ceil(before) != jnp.ceil(now))
    return changed & (jnp.asarray(step) > 0)
