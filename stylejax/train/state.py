"""The train state pytree, the networks and optimisers a config describes."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from stylejax.models import Discriminator, Generator


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue exactly: checkpoint this and nothing else.

    G_ema shares G's non-trained buffers (w_avg, the constant noise), as the
    official code copies them on every EMA update.
    """

    step: jnp.ndarray
    g_params: Any
    d_params: Any
    ema_params: Any
    g_stats: Any  # {'mapping': {'w_avg'}}
    noise_consts: Any
    g_opt_state: Any
    d_opt_state: Any
    pl_mean: jnp.ndarray
    ada_p: jnp.ndarray  # the probability of each augmentation (train/augment.py)
    ada_signs: jnp.ndarray  # [sum of sign(D(real)), images] since ADA last adjusted p
    nonfinite_streak: jnp.ndarray  # steps in a row with a non-finite loss or gradient
    nonfinite_total: jnp.ndarray

    def generator_variables(self, ema: bool = True) -> dict:
        params = self.ema_params if ema else self.g_params
        return {"params": params, "stats": self.g_stats, "noise_consts": self.noise_consts}


def lazy_regularization_ratio(interval: int) -> float:
    """Lazy regularisation runs every `interval` steps: Adam sees (I+1)/I as many updates."""
    return interval / (interval + 1) if interval > 0 else 1.0


def make_optimizer(lr: float, beta1: float, beta2: float, eps: float,
                   reg_interval: int) -> optax.GradientTransformation:
    """Adam with the official lazy-regularisation correction: lr * r, betas ** r, r = I / (I + 1).

    Its state is one vector per network (optax.flatten): the update is then a few kernels
    instead of several per parameter, which cut the compile time of the train step by a third.
    """
    r = lazy_regularization_ratio(reg_interval)
    return optax.flatten(optax.adam(lr * r, b1=beta1 ** r, b2=beta2 ** r, eps=eps))


def optimizers(config: ml_collections.ConfigDict):
    o, loss = config.optim, config.loss
    g_opt = make_optimizer(o.g_lr, o.beta1, o.beta2, o.eps, loss.g_reg_interval)
    d_opt = make_optimizer(o.d_lr, o.beta1, o.beta2, o.eps, loss.d_reg_interval)
    return g_opt, d_opt


def create_train_state(config: ml_collections.ConfigDict, G: Generator, D: Discriminator,
                       key: jax.Array) -> TrainState:
    """Initialise G, D (G_ema = G) and both Adam states from one key."""
    g_key, d_key = jax.random.split(key)
    z = jnp.zeros((1, G.z_dim))
    c = jnp.zeros((1, G.c_dim)) if G.c_dim else None
    g_vars = G.init({"params": g_key, "noise": g_key}, z, c)
    img = jnp.zeros((1, G.resolution, G.resolution, G.img_channels))
    d_params = D.init(d_key, img, c)["params"]
    g_opt, d_opt = optimizers(config)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_vars["params"], d_params=d_params,
        ema_params=jax.tree_util.tree_map(jnp.copy, g_vars["params"]),  # own buffers: donated apart
        g_stats=g_vars["stats"], noise_consts=g_vars.get("noise_consts", {}),
        g_opt_state=g_opt.init(g_vars["params"]), d_opt_state=d_opt.init(d_params),
        pl_mean=jnp.zeros((), jnp.float32),
        ada_p=jnp.asarray(0.0 if config.augment.mode == "off" else config.augment.p, jnp.float32),
        ada_signs=jnp.zeros(2, jnp.float32),
        nonfinite_streak=jnp.zeros((), jnp.int32), nonfinite_total=jnp.zeros((), jnp.int32))
