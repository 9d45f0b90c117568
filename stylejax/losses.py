"""StyleGAN2 losses and regularisers as pure functions of logits and callables.

Non-saturating logistic losses, the R1 gradient penalty on reals, and the
path-length regulariser, all written so that they can be differentiated
again by the train step (R1 and path length are gradients themselves).
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp


def generator_loss(fake_logits: jnp.ndarray) -> jnp.ndarray:
    """Non-saturating: mean softplus(-D(G(z)))."""
    return jnp.mean(jax.nn.softplus(-fake_logits))


def discriminator_loss(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
    """Logistic: mean softplus(D(G(z))) + mean softplus(-D(x))."""
    return jnp.mean(jax.nn.softplus(fake_logits)) + jnp.mean(jax.nn.softplus(-real_logits))


def r1_penalty(logits_fn: Callable[[jnp.ndarray], jnp.ndarray], reals: jnp.ndarray):
    """Per-sample |d D(x) / dx|^2 on real images, and the real logits."""
    def total_logits(x):
        logits = logits_fn(x)
        return jnp.sum(logits), logits
    grads, logits = jax.grad(total_logits, has_aux=True)(reals)
    return jnp.sum(jnp.square(grads), axis=tuple(range(1, grads.ndim))), logits


def path_lengths(synthesis_fn: Callable[[jnp.ndarray], jnp.ndarray], ws: jnp.ndarray,
                 probe: jnp.ndarray) -> jnp.ndarray:
    """|J_w^T y| per sample, y = probe / sqrt(H W) with probe ~ N(0, I) shaped as the images: the
    Jacobian norm the regulariser evens out."""
    images, vjp = jax.vjp(synthesis_fn, ws)
    h, w = images.shape[1], images.shape[2]
    (grads,) = vjp(probe.astype(images.dtype) / math.sqrt(h * w))
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))


def path_length_penalty(lengths: jnp.ndarray, pl_mean: jnp.ndarray, decay: float):
    """(|J^T y| - a)^2 with a the running mean of lengths, updated first, and differentiated
    through this batch's share of a (decay * mean length), as the official loss does."""
    new_mean = pl_mean + decay * (jnp.mean(lengths) - pl_mean)
    return jnp.square(lengths - new_mean), jax.lax.stop_gradient(new_mean)
