"""Mapping network: latent z (and class label c) to the intermediate latent w."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from stylejax.models.layers import LRELU_SLOPE, EqualDense, normalize_2nd_moment
from stylejax.models.styles import truncate


class MappingNetwork(nn.Module):
    """z -> w, broadcast to num_ws layers, with the running average w_avg.

    w_avg lives in the 'stats' collection (not trained); pass
    `update_emas=True` with `mutable=['stats']` to update it during training.
    With z_dim = 0 it maps a label alone (the discriminator's projection).
    """

    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int | None
    num_layers: int = 8
    lr_multiplier: float = 0.01
    w_avg_beta: float | None = 0.995
    # None: StyleGAN2's layers, lrelu with its gain after the bias; a number: StyleGAN (2018)'s,
    # this gain folded into the weight and a plain lrelu after the bias.
    weight_gain: float | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jnp.ndarray | None, c: jnp.ndarray | None = None,
                 truncation_psi=1.0, truncation_cutoff=None,
                 update_emas: bool = False) -> jnp.ndarray:
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.astype(jnp.float32)))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional (c_dim={self.c_dim}): pass labels c")
            embedded = EqualDense(self.w_dim, name="embed", dtype=self.dtype)(c.astype(jnp.float32))
            parts.append(normalize_2nd_moment(embedded.astype(jnp.float32)))
        x = jnp.concatenate(parts, axis=-1)
        for idx in range(self.num_layers):
            if self.weight_gain is None:
                x = EqualDense(self.w_dim, activation="lrelu", lr_multiplier=self.lr_multiplier,
                               dtype=self.dtype, name=f"fc{idx}")(x)
            else:
                x = jax.nn.leaky_relu(EqualDense(
                    self.w_dim, lr_multiplier=self.lr_multiplier, weight_gain=self.weight_gain,
                    dtype=self.dtype, name=f"fc{idx}")(x), LRELU_SLOPE)
        x = x.astype(jnp.float32)

        if self.w_avg_beta is None:
            return x
        w_avg = self.variable("stats", "w_avg", jnp.zeros, (self.w_dim,), jnp.float32)
        if update_emas and not self.is_initializing():
            batch_mean = jnp.mean(jax.lax.stop_gradient(x), axis=0)
            w_avg.value = batch_mean + self.w_avg_beta * (w_avg.value - batch_mean)
        if self.num_ws is None:
            return x
        ws = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, self.w_dim))
        return truncate(ws, w_avg.value, truncation_psi, truncation_cutoff)
