"""Projecting images into a generator's W space (Karras et al. 2020, section 5), with the schedule
of stylegan2-ada-pytorch's projector.

One w (shared by every layer, starting at the mean w) and the per-pixel noise maps (starting
random) are optimised with Adam to make the target under LPIPS. The learning rate ramps up over
the first 5% of the steps and down (cosine) over the last 25%; Gaussian noise added to w, from
5% of W's spread, fades to 0 by 75% of the steps; the noise maps are kept zero-mean, unit-variance
and free of spatial correlation by a penalty on their autocorrelation at every scale down to
8x8. The whole optimisation is one compiled loop (`lax.scan`), vmapped over a batch of targets.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stylejax.metrics.path_length import prepare_images
from stylejax.metrics.vgg import LPIPS
from stylejax.models import Generator


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The official projector's settings."""

    num_steps: int = 1000
    w_avg_samples: int = 10000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5

    def learning_rate(self, step: jnp.ndarray) -> jnp.ndarray:
        t = step / self.num_steps
        ramp = jnp.minimum(1.0, (1.0 - t) / self.lr_rampdown_length)
        ramp = 0.5 - 0.5 * jnp.cos(ramp * jnp.pi)
        return self.initial_learning_rate * ramp * jnp.minimum(1.0, t / self.lr_rampup_length)

    def w_noise_scale(self, step: jnp.ndarray, w_std: jnp.ndarray) -> jnp.ndarray:
        t = step / self.num_steps
        return w_std * self.initial_noise_factor * jnp.maximum(
            0.0, 1.0 - t / self.noise_ramp_length) ** 2


def noise_regularization(maps: list[jnp.ndarray]) -> jnp.ndarray:
    """Sum over maps [H, W] and their 2x2 average-pooled pyramids (down to 8x8) of the squared
    mean products with the map rolled by one pixel along each axis."""
    total = jnp.zeros(())
    for noise in maps:
        while True:
            total += jnp.mean(noise * jnp.roll(noise, 1, axis=1)) ** 2
            total += jnp.mean(noise * jnp.roll(noise, 1, axis=0)) ** 2
            if noise.shape[0] <= 8:
                break
            h, w = noise.shape
            noise = noise.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return total


def _normalized(noise: jnp.ndarray) -> jnp.ndarray:
    noise = noise - jnp.mean(noise)
    return noise * jax.lax.rsqrt(jnp.mean(jnp.square(noise)))


@dataclasses.dataclass(frozen=True)
class Projection:
    """Per target: `ws` [steps, w_dim] (w after each step; the last is the projection),
    `distances` [steps] (LPIPS before each step), the final `noise` (G's noise_consts) and
    `distance`, the LPIPS distance between the target and the projection."""

    ws: np.ndarray
    distances: np.ndarray
    noise: dict
    distance: float


class Projector:
    """Projects batches of target images ([B, R, R, C] in [-1, 1], at G's resolution)."""

    def __init__(self, G: Generator, variables: dict, lpips: LPIPS, lpips_params: dict,
                 schedule: Schedule = Schedule(), seed: int = 0):
        if G.c_dim:
            raise ValueError("the projector needs an unconditional generator")
        self.G, self.variables, self.schedule = G, variables, schedule
        self.lpips, self.lpips_params = lpips, lpips_params
        key = jax.random.key(seed)
        self._stats_key, self._key = jax.random.split(key)
        self.w_avg, self.w_std = jax.jit(self._w_statistics)(variables)
        self._project = jax.jit(jax.vmap(self._project_one, in_axes=(None, None, 0, 0)))
        self._synthesize = jax.jit(lambda v, ws: G.apply(v, ws, "const", method=G.synthesize))

    def _w_statistics(self, variables: dict) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Mean w and the root mean squared distance from it, over w_avg_samples latents."""
        G = self.G
        z = jax.random.normal(self._stats_key, (self.schedule.w_avg_samples, G.z_dim))
        w = G.apply(variables, z, method=G.map_latents)[:, 0]
        w_avg = jnp.mean(w, axis=0)
        return w_avg, jnp.sqrt(jnp.sum(jnp.square(w - w_avg)) / len(w))

    def _project_one(self, variables: dict, lpips_params: dict, target: jnp.ndarray,
                     key: jax.Array):
        G, schedule = self.G, self.schedule
        lpips = lambda method, *a: self.lpips.apply({"params": lpips_params}, *a,  # noqa: E731
                                                    method=method)
        target_embedding = lpips(LPIPS.embed, prepare_images(target[None], crop=False))
        noise_key, step_key = jax.random.split(key)
        leaves, tree = jax.tree_util.tree_flatten(variables.get("noise_consts", {}))
        noise = [jax.random.normal(k, x.shape) for k, x in
                 zip(jax.random.split(noise_key, len(leaves)), leaves, strict=True)]

        def distance(w, noise):
            synth_variables = dict(variables)
            if leaves:
                synth_variables["noise_consts"] = jax.tree_util.tree_unflatten(tree, noise)
            ws = jnp.broadcast_to(w, (1, G.num_ws, G.w_dim))
            images = G.apply(synth_variables, ws, "const", method=G.synthesize)
            return lpips(LPIPS.compare, target_embedding,
                         lpips(LPIPS.embed, prepare_images(images, crop=False)))[0]

        def loss(params, step):
            w, noise = params
            w_noise = jax.random.normal(jax.random.fold_in(step_key, step), w.shape)
            dist = distance(w + w_noise * schedule.w_noise_scale(step, self.w_std), noise)
            return dist + schedule.regularize_noise_weight * noise_regularization(noise), dist

        adam = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)

        def step(carry, step):
            params, state = carry
            grads, dist = jax.grad(loss, has_aux=True)(params, step)
            updates, state = adam.update(grads, state)
            lr = schedule.learning_rate(step)
            w, noise = jax.tree_util.tree_map(lambda p, u: p - lr * u, params, updates)
            return ((w, [_normalized(n) for n in noise]), state), (w, dist)

        params = (self.w_avg, noise)
        (params, _), (ws, dists) = jax.lax.scan(step, (params, adam.init(params)),
                                                jnp.arange(schedule.num_steps))
        return ws, dists, params[1], distance(*params)

    def __call__(self, targets: np.ndarray) -> list[Projection]:
        """The projections of a batch of targets, each with its own noise draws."""
        keys = jax.random.split(self._key, len(targets))
        ws, dists, noise, final = self._project(self.variables, self.lpips_params,
                                                jnp.asarray(targets, jnp.float32), keys)
        _, tree = jax.tree_util.tree_flatten(self.variables.get("noise_consts", {}))
        return [Projection(np.asarray(ws[i]), np.asarray(dists[i]),
                           jax.tree_util.tree_unflatten(tree, [np.asarray(n[i]) for n in noise]),
                           float(final[i]))
                for i in range(len(targets))]

    def render(self, projection: Projection, steps: np.ndarray | None = None) -> np.ndarray:
        """Images [N, R, R, C] in [-1, 1] of the ws of `steps` (default: the last) with the
        projection's final noise."""
        steps = np.array([len(projection.ws) - 1]) if steps is None else np.asarray(steps)
        variables = dict(self.variables)
        if projection.noise:
            variables["noise_consts"] = projection.noise
        ws = jnp.broadcast_to(jnp.asarray(projection.ws[steps])[:, None],
                              (len(steps), self.G.num_ws, self.G.w_dim))
        return np.asarray(self._synthesize(variables, ws))



def best_threshold(generated: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy): the LPIPS distance that best tells the network's own images
    (projected at most that far) from real ones (farther), and its accuracy on these two sets;
    the midpoint between neighbouring distances, the lowest of equally good ones."""
    generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
    values = np.unique(np.concatenate([generated, real]))
    candidates = np.concatenate([[values[0] - 1e-12], (values[1:] + values[:-1]) / 2,
                                 [values[-1]]])
    correct = [np.sum(generated <= c) + np.sum(real > c) for c in candidates]
    best = int(np.argmax(correct))
    return float(candidates[best]), correct[best] / (len(generated) + len(real))


def attribution(distance: float, generated: np.ndarray, real: np.ndarray) -> dict:
    """Where a target's projection distance falls against the calibration distances of the
    network's own images and of real ones, and the verdict of the best threshold."""
    threshold, accuracy = best_threshold(generated, real)
    made = distance <= threshold
    return {"lpips": distance,
            "verdict": f"{'likely' if made else 'unlikely'} made by this network",
            "threshold": threshold, "calibration_accuracy": accuracy,
            "generated_at_least_as_far": float(np.mean(np.asarray(generated) >= distance)),
            "real_at_most_as_far": float(np.mean(np.asarray(real) <= distance)),
            "generated_median": float(np.median(generated)), "real_median": float(np.median(real))}
