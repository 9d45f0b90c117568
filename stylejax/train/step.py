"""One training iteration as a pure function: G main, (G reg), D main, (D reg).

The phases run in the official order, each with its own optimizer update, and
each draws its latents from `fold_in(root_key, step)`, so an iteration depends
only on (state, batch, seed).  Training compiles each phase as its own program
(train/programs.py), once; the regularisation phases run when they are due.  With
config.device_batch, a phase runs each device's share of the batch in rounds.
The phases and their loss terms follow stylegan2-ada-pytorch's training/loss.py.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import NamedSharding

from stylejax.errors import ConfigError
from stylejax.losses import discriminator_loss, generator_loss, path_length_penalty, path_lengths, r1_penalty
from stylejax.models import Discriminator, Generator, mix_styles
from stylejax.train.augment import COLOR, adjust_p, augment_pipe
from stylejax.train.progressive import fade_reals, growing, lod_at, lod_changes_level, lod_kwargs
from stylejax.train.state import TrainState, optimizers

PyTree = Any
Latents = dict[str, jnp.ndarray | None]  # z, labels c and style mixing's second z (None: off)
PhaseOutput = tuple[TrainState, dict[str, jnp.ndarray], jnp.ndarray]  # state, metrics, all finite


def select(ok: jnp.ndarray, new: PyTree, old: PyTree) -> PyTree:
    """`new` where the phase was finite, else `old`: a non-finite phase changes nothing."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def all_finite(loss: jnp.ndarray, grads: PyTree) -> jnp.ndarray:
    """One check over the gradients raveled into one vector, as the flattened optimizer ravels
    them: XLA shares the copy, and the program gets one kernel instead of one per parameter."""
    flat, _ = jax.flatten_util.ravel_pytree(grads)
    return jnp.isfinite(loss) & jnp.all(jnp.isfinite(flat))


def apply_update(ok: jnp.ndarray, opt: optax.GradientTransformation, grads: PyTree, opt_state: PyTree,
                 params: PyTree) -> tuple[PyTree, PyTree]:
    """(params, optimizer state) after one step of opt where `ok`, else as they were."""
    updates, new_opt_state = opt.update(grads, opt_state, params)
    return select(ok, optax.apply_updates(params, updates), params), select(ok, new_opt_state, opt_state)


def keep_finite(ok: jnp.ndarray, state: TrainState, fields: dict[str, PyTree]) -> dict[str, PyTree]:
    """The new values of these state fields where `ok`, else the state's."""
    return {name: select(ok, value, getattr(state, name)) for name, value in fields.items()}


def ema_beta(config: ml_collections.ConfigDict, step: jnp.ndarray) -> jnp.ndarray:
    """Per-step G_ema decay: half-life ema_kimg, optionally ramped up with the images seen."""
    batch = config.batch_size
    ema_nimg = jnp.asarray(config.ema_kimg * 1000.0, jnp.float32)
    if config.ema_rampup is not None:
        ema_nimg = jnp.minimum(ema_nimg, step.astype(jnp.float32) * batch * config.ema_rampup)
    return 0.5 ** (batch / jnp.maximum(ema_nimg, 1e-8))


class Draws(NamedTuple):
    """What a phase draws at random (StyleGAN2Loss.draw)."""

    latents: Latents
    cutoff: jnp.ndarray | None  # style mixing's first layer from mix_z (None: no style mixing)
    noise_key: jax.Array  # the per-pixel noise inputs
    probe: jnp.ndarray | None  # the path-length probe, N(0, I) shaped as the images (G reg only)


class TrainPhases(NamedTuple):
    """The phases of an iteration as pure functions; each returns the state, its metrics and
    whether everything so far was finite.  Compiled one program per phase, the whole step
    compiles each phase once, where one program per combination of regularisers would compile
    G main and D main three times over."""

    g_main: Callable  # (state) -> (state, metrics, ok)
    g_reg: Callable  # (state, ok) -> (state, metrics, ok)
    d_main: Callable  # (state, batch, ok) -> (state, metrics, ok)
    d_reg: Callable  # (state, batch, ok) -> (state, metrics, ok)
    finish: Callable  # (state, ok) -> (state, metrics): EMA, step counter, non-finite counters


@dataclasses.dataclass(frozen=True)
class Rounds:
    """A phase's batch in `count` rounds (config.device_batch, the official batch_gpu).  Round r is
    each device's r-th slice of its own share, so a round stays on the devices that hold it and
    keeps the batch's minibatch-std groups."""

    sharding: NamedSharding | None  # of batches and latents; None: not constrained
    num_shards: int
    count: int

    def shard(self, x: jnp.ndarray) -> jnp.ndarray:
        """x laid out as the batch, so every device generates only its own part of it."""
        return x if self.sharding is None else jax.lax.with_sharding_constraint(x, self.sharding)

    def take(self, tree: PyTree, r: int) -> PyTree:
        """Round r of a tree of batch-sized arrays."""
        def piece(x):
            parts = x.reshape(self.num_shards, self.count, -1, *x.shape[1:])
            return self.shard(parts[:, r].reshape(-1, *x.shape[1:]))
        return tree if self.count == 1 else jax.tree_util.tree_map(piece, tree)

    def mean(self, fn: Callable[[PyTree, int], PyTree], tree: PyTree) -> PyTree:
        """fn(round of tree, round index) averaged over the rounds.  fn returns what is linear in
        its round's means (losses, gradients, the updated w_avg), so the average is the whole
        batch's.  Unrolled: convolutions inside lax.scan leave XLA CPU's fast library."""
        outs = [fn(self.take(tree, r), r) for r in range(self.count)]
        if self.count == 1:
            return outs[0]
        return jax.tree_util.tree_map(lambda *xs: sum(xs) / self.count, *outs)

    def key(self, key: jax.Array, r: int) -> jax.Array:
        """The noise inputs of round r: rounds draw their own noise, one round draws the batch's."""
        return key if self.count == 1 else jax.random.fold_in(key, r)


def batch_rounds(config: ml_collections.ConfigDict, sharding: NamedSharding | None) -> Rounds:
    """The rounds of config.device_batch images per device (None: one round)."""
    num_shards = 1 if sharding is None else sharding.mesh.size
    share = config.batch_size // num_shards
    return Rounds(sharding, num_shards, share // min(config.device_batch or share, share))


class StyleGAN2Loss:
    """The four phases (Gmain, Greg, Dmain, Dreg) and their loss terms, as in training/loss.py,
    each phase followed by its own optimizer step."""

    def __init__(self, config: ml_collections.ConfigDict, G: Generator, D: Discriminator,
                 batch_sharding: NamedSharding | None):
        self.config, self.G, self.D = config, G, D
        self.g_opt, self.d_opt = optimizers(config)
        self.root_key = jax.random.key(config.seed)
        self.rounds = batch_rounds(config, batch_sharding)
        self.augment = None if config.augment.mode == "off" else augment_pipe(config.augment.pipe)
        self.adaptive = config.augment.mode == "ada"
        self.progressive = growing(config)
        if self.augment is not None and G.img_channels not in (1, 3) and \
                any(getattr(self.augment, name) for name in COLOR):
            raise ConfigError(f"config.augment.pipe={config.augment.pipe!r} changes colours, which needs "
                              f"RGB or greyscale images, not {G.img_channels} channels; use 'bg'")

    def lod(self, state: TrainState) -> jnp.ndarray | None:
        """The level of detail of this step when growing progressively (None: not growing)."""
        return lod_at(self.config, state.step) if self.progressive else None

    def reset_optimizers_at_new_level(self, state: TrainState) -> TrainState:
        """Both Adam states back to their start where a fade starts or ends, as official."""
        reset = lod_changes_level(self.config, state.step)
        fresh = lambda tree: jax.tree_util.tree_map(  # noqa: E731
            lambda x: jnp.where(reset, jnp.zeros_like(x), x), tree)
        return state.replace(g_opt_state=fresh(state.g_opt_state), d_opt_state=fresh(state.d_opt_state))

    def phase_key(self, state: TrainState, phase: int) -> jax.Array:
        """Everything a phase draws comes from (seed, step, phase): the same on any device count."""
        return jax.random.fold_in(jax.random.fold_in(self.root_key, state.step), phase)

    def augment_draws(self, state: TrainState, phase: int, stream: int, n: int) -> dict | None:
        """The augmentations of n images of a phase (None: augmentation is off), drawn for the
        whole batch with p from the state, so that rounds slice them as they slice the images."""
        if self.augment is None:
            return None
        key = jax.random.fold_in(self.phase_key(state, phase), 2 + stream)  # 0, 1: the latents
        shape = (n, self.G.resolution, self.G.resolution, self.G.img_channels)
        return self.augment.draw(key, state.ada_p, shape)

    def signs_seen(self, state: TrainState, sign_sum: jnp.ndarray, n: int) -> dict[str, jnp.ndarray]:
        """ADA's overfitting heuristic: the sum of sign(D(real)) and the count, since p's last
        adjustment, as a state field (none unless p is adaptive)."""
        if not self.adaptive:
            return {}
        total = jnp.round(sign_sum * self.rounds.count)  # the rounds' mean of their sums
        return dict(ada_signs=state.ada_signs + jnp.stack([total, jnp.asarray(n, jnp.float32)]))

    def latents(self, key: jax.Array, n: int) -> tuple[jnp.ndarray, jnp.ndarray | None]:
        """n latents z and, for a conditional G, n random one-hot labels (else None)."""
        z_key, c_key = jax.random.split(key)
        z = self.rounds.shard(jax.random.normal(z_key, (n, self.G.z_dim)))
        if not self.G.c_dim:
            return z, None
        labels = jax.random.randint(c_key, (n,), 0, self.G.c_dim)
        return z, self.rounds.shard(jax.nn.one_hot(labels, self.G.c_dim))

    def mixing(self, key: jax.Array, n: int,
               state: TrainState) -> tuple[jnp.ndarray | None, jnp.ndarray | None]:
        """(second latents, layer cutoff) of style-mixing regularisation for n fakes; (None, None)
        when it is off.  With probability 1 - style_mixing_prob the cutoff is past the last layer.
        While growing, the layers are those of the resolutions shown (2 per level of detail less),
        as official."""
        prob, num_ws = self.config.loss.style_mixing_prob, self.G.num_ws
        if prob == 0:
            return None, None
        if self.progressive:
            num_ws = num_ws - 2 * jnp.floor(self.lod(state)).astype(jnp.int32)
        z_key, cut_key, prob_key = jax.random.split(key, 3)
        cutoff = jax.random.randint(cut_key, (), 1, num_ws)
        cutoff = jnp.where(jax.random.uniform(prob_key) < prob, cutoff, num_ws)
        return self.rounds.shard(jax.random.normal(z_key, (n, self.G.z_dim))), cutoff

    def draw(self, state: TrainState, phase: int, n: int, probe: bool = False) -> Draws:
        """Everything random in a phase of n fakes, all from (seed, step, phase): the same on any
        device count.  The one place a phase draws, so that given draws can replace it."""
        key = self.phase_key(state, phase)
        z, c = self.latents(jax.random.fold_in(key, 0), n)
        mixing_key, noise_key, *probe_key = jax.random.split(jax.random.fold_in(key, 1), 3 if probe else 2)
        mix_z, cutoff = self.mixing(mixing_key, n, state)
        shape = (n, self.G.resolution, self.G.resolution, self.G.img_channels)
        probe_images = self.rounds.shard(jax.random.normal(probe_key[0], shape)) if probe else None
        return Draws(dict(z=z, c=c, mix_z=mix_z), cutoff, noise_key, probe_images)

    def run_mapping(self, g_params: PyTree, state: TrainState, latents: Latents,
                    cutoff: jnp.ndarray | None) -> tuple[jnp.ndarray, PyTree]:
        """ws, style-mixed with mix_z's from the cutoff on; and the stats with w_avg updated (from
        z alone), as the official training does."""
        G, variables = self.G, {**state.generator_variables(ema=False), "params": g_params}
        ws, updated = G.apply(variables, latents["z"], latents["c"], update_emas=True, mutable=["stats"],
                              method=G.map_latents)
        if latents["mix_z"] is not None:
            mixed = G.apply(variables, latents["mix_z"], latents["c"], method=G.map_latents)
            ws = mix_styles(ws, mixed, cutoff)
        return ws, updated["stats"]

    def run_synthesis(self, g_params: PyTree, state: TrainState, ws: jnp.ndarray,
                      noise_key: jax.Array) -> jnp.ndarray:
        variables = {**state.generator_variables(ema=False), "params": g_params}
        return self.G.apply(variables, ws, rngs={"noise": noise_key}, method=self.G.synthesize,
                            **lod_kwargs(self.config, state.step))

    def run_discriminator(self, d_params: PyTree, img: jnp.ndarray, c: jnp.ndarray | None,
                          augment: dict | None = None, lod: jnp.ndarray | None = None) -> jnp.ndarray:
        """D of the images augmented as drawn (None: as they are), at the level of detail `lod`
        when growing.  Minibatch-stddev groups of consecutive images (the official grouping of a
        per-GPU batch of one group): within a device's share, and the same on any device count
        and in rounds."""
        if augment is not None:
            img = self.augment.apply(img, augment)
        groups = img.shape[0] // min(self.D.mbstd_group_size, img.shape[0])
        lod = {} if lod is None else {"lod": lod}
        return self.D.apply({"params": d_params}, img, c, mbstd_shards=groups, **lod)

    def reals(self, batch: dict, state: TrainState) -> dict[str, jnp.ndarray | None]:
        """The batch's images (faded to the level of detail when growing) and, for a conditional
        G, their labels (else None)."""
        image = batch["image"] if not self.progressive else fade_reals(batch["image"], self.lod(state))
        return dict(image=image, real_c=batch["label"] if self.G.c_dim else None)

    def round_gradients(self, loss_fn: Callable, params: PyTree, inputs: PyTree) -> PyTree:
        """((loss, aux), gradients) of loss_fn(params, round of inputs, round index), averaged
        over the rounds."""
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        return self.rounds.mean(lambda part, r: grad_fn(params, part, r), inputs)

    def update_generator(self, state: TrainState, loss: jnp.ndarray, grads: PyTree,
                         **fields: PyTree) -> tuple[TrainState, jnp.ndarray]:
        """G's optimizer step and the new state `fields`, applied only if loss and grads are finite."""
        ok = all_finite(loss, grads)
        params, opt_state = apply_update(ok, self.g_opt, grads, state.g_opt_state, state.g_params)
        return state.replace(g_params=params, g_opt_state=opt_state, **keep_finite(ok, state, fields)), ok

    def update_discriminator(self, state: TrainState, loss: jnp.ndarray, grads: PyTree,
                             **fields: PyTree) -> tuple[TrainState, jnp.ndarray]:
        """D's optimizer step and the new state `fields`, applied only if loss and grads are finite."""
        ok = all_finite(loss, grads)
        params, opt_state = apply_update(ok, self.d_opt, grads, state.d_opt_state, state.d_params)
        return state.replace(d_params=params, d_opt_state=opt_state, **keep_finite(ok, state, fields)), ok

    def loss_g_main(self, g_params: PyTree, latents: Latents, r: int, *, state: TrainState,
                    cutoff: jnp.ndarray | None, noise_key: jax.Array) -> tuple[jnp.ndarray, tuple]:
        """Gmain of round r: softplus(-D(G(z))); and the mapping's stats and the mean fake logit."""
        ws, stats = self.run_mapping(g_params, state, latents, cutoff)
        img = self.run_synthesis(g_params, state, ws, self.rounds.key(noise_key, r))
        logits = self.run_discriminator(state.d_params, img, latents["c"], latents["augment"],
                                        self.lod(state))
        return generator_loss(logits), (stats, jnp.mean(logits))

    def loss_g_pl(self, g_params: PyTree, latents: Latents, *, state: TrainState, cutoff: jnp.ndarray | None,
                  noise_key: jax.Array, probe: jnp.ndarray) -> tuple[jnp.ndarray, tuple]:
        """Gpl: the path-length penalty, weighted and scaled by the lazy interval; and the mapping's
        stats, the updated path-length mean and the per-sample penalty."""
        loss_cfg = self.config.loss
        ws, stats = self.run_mapping(g_params, state, latents, cutoff)
        lengths = path_lengths(lambda w: self.run_synthesis(g_params, state, w, noise_key), ws, probe)
        penalty, pl_mean = path_length_penalty(lengths, state.pl_mean, loss_cfg.pl_decay)
        loss = jnp.mean(penalty) * loss_cfg.pl_weight * loss_cfg.g_reg_interval
        return loss, (stats, pl_mean, penalty)

    def loss_d_main(self, d_params: PyTree, inputs: dict, r: int, *, state: TrainState,
                    cutoff: jnp.ndarray | None, noise_key: jax.Array) -> tuple[jnp.ndarray, tuple]:
        """Dmain of round r: softplus(D(G(z))) + softplus(-D(x)); and the mapping's stats and the
        mean real and fake logits."""
        ws, stats = self.run_mapping(state.g_params, state, inputs, cutoff)
        fake = jax.lax.stop_gradient(self.run_synthesis(state.g_params, state, ws,
                                                        self.rounds.key(noise_key, r)))
        lod = self.lod(state)
        fake_logits = self.run_discriminator(d_params, fake, inputs["c"], inputs["fake_augment"], lod)
        real_logits = self.run_discriminator(d_params, inputs["image"], inputs["real_c"],
                                             inputs["real_augment"], lod)
        loss = discriminator_loss(real_logits, fake_logits)
        return loss, (stats, jnp.mean(real_logits), jnp.mean(fake_logits), jnp.sum(jnp.sign(real_logits)))

    def loss_d_r1(self, d_params: PyTree, reals: dict, _round: int, *,
                  lod: jnp.ndarray | None) -> tuple[jnp.ndarray, tuple]:
        """Dr1 of a round: gamma/2 |dD(x)/dx|^2 on reals (the gradient taken through their
        augmentation, as officially), scaled by the lazy interval; and the mean penalty and the
        sum of the real logits' signs."""
        loss_cfg = self.config.loss
        logits_fn = functools.partial(self.run_discriminator, d_params, c=reals["real_c"],
                                      augment=reals["real_augment"], lod=lod)
        penalty, logits = r1_penalty(logits_fn, reals["image"])
        loss = jnp.mean(penalty) * (loss_cfg.r1_gamma / 2) * loss_cfg.d_reg_interval
        return loss, (jnp.mean(penalty), jnp.sum(jnp.sign(logits)))

    def g_main(self, state: TrainState) -> PhaseOutput:
        """Gmain: G's step on the non-saturating loss of a batch of fakes."""
        with jax.named_scope("g_main"):  # the scopes name the phases in profiles
            if self.progressive:
                state = self.reset_optimizers_at_new_level(state)
            draws = self.draw(state, 0, self.config.batch_size)
            latents = {**draws.latents, "augment": self.augment_draws(state, 0, 0, self.config.batch_size)}
            loss_fn = functools.partial(self.loss_g_main, state=state, cutoff=draws.cutoff,
                                        noise_key=draws.noise_key)
            (loss, (stats, fake_score)), grads = self.round_gradients(loss_fn, state.g_params, latents)
            state, ok = self.update_generator(state, loss, grads, g_stats=stats)
            metrics = dict(g_loss=loss, fake_score_g=fake_score)
            if self.progressive:
                metrics["lod"] = self.lod(state)
            return state, metrics, ok

    def g_reg(self, state: TrainState, ok: jnp.ndarray) -> PhaseOutput:
        """Greg: G's step on the path-length penalty of batch_size / pl_batch_shrink fakes, in one
        round: each round would update the path-length mean the penalty uses."""
        with jax.named_scope("g_reg"):
            n = self.config.batch_size // self.config.loss.pl_batch_shrink
            draws = self.draw(state, 1, n, probe=True)
            loss_fn = functools.partial(self.loss_g_pl, state=state, cutoff=draws.cutoff,
                                        noise_key=draws.noise_key, probe=draws.probe)
            (loss, (stats, pl_mean, penalty)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.g_params, draws.latents)
            state, ok_reg = self.update_generator(state, loss, grads, g_stats=stats, pl_mean=pl_mean)
            return state, dict(pl_penalty=jnp.mean(penalty), pl_mean=pl_mean), ok & ok_reg

    def d_main(self, state: TrainState, batch: dict, ok: jnp.ndarray) -> PhaseOutput:
        """Dmain: D's step on the logistic loss of a batch of fakes and the batch of reals."""
        with jax.named_scope("d_main"):
            n = self.config.batch_size
            draws = self.draw(state, 2, n)
            augment = dict(real_augment=self.augment_draws(state, 2, 0, n),
                           fake_augment=self.augment_draws(state, 2, 1, n))
            loss_fn = functools.partial(self.loss_d_main, state=state, cutoff=draws.cutoff,
                                        noise_key=draws.noise_key)
            (loss, (stats, real_score, fake_score, signs)), grads = self.round_gradients(
                loss_fn, state.d_params, {**draws.latents, **self.reals(batch, state), **augment})
            state, ok_d = self.update_discriminator(state, loss, grads, g_stats=stats,
                                                    **self.signs_seen(state, signs, n))
            metrics = dict(d_loss=loss, real_score=real_score, fake_score=fake_score)
            if self.augment is not None:  # r_t of this batch of reals
                metrics["ada_rt"] = signs * self.rounds.count / n
            return state, metrics, ok & ok_d

    def d_reg(self, state: TrainState, batch: dict, ok: jnp.ndarray) -> PhaseOutput:
        """Dreg: D's step on the R1 penalty of the batch of reals."""
        with jax.named_scope("d_reg"):
            n = self.config.batch_size
            reals = {**self.reals(batch, state), "real_augment": self.augment_draws(state, 3, 0, n)}
            loss_fn = functools.partial(self.loss_d_r1, lod=self.lod(state))
            (loss, (penalty, signs)), grads = self.round_gradients(loss_fn, state.d_params, reals)
            state, ok_reg = self.update_discriminator(state, loss, grads, **self.signs_seen(state, signs, n))
            return state, dict(r1_penalty=penalty), ok & ok_reg


def finish(config: ml_collections.ConfigDict, state: TrainState,
           ok: jnp.ndarray) -> tuple[TrainState, dict[str, jnp.ndarray]]:
    """G_ema, the step counter and the non-finite counters, once every phase has run."""
    with jax.named_scope("ema"):
        beta = ema_beta(config, state.step)
        ema = jax.tree_util.tree_map(lambda p, e: p + beta * (e - p), state.g_params, state.ema_params)
    streak = jnp.where(ok, 0, state.nonfinite_streak + 1)
    state = state.replace(step=state.step + 1, ema_params=ema, nonfinite_streak=streak,
                          nonfinite_total=state.nonfinite_total + (~ok).astype(jnp.int32))
    metrics = dict(nonfinite_streak=streak, nonfinite_total=state.nonfinite_total)
    if config.augment.mode == "ada":
        state = adapt_p(config, state)
    if config.augment.mode != "off":
        metrics["ada_p"] = state.ada_p
    return state, metrics


def adapt_p(config: ml_collections.ConfigDict, state: TrainState) -> TrainState:
    """Every config.augment.interval steps (counted after this one), p moves by ADA's rule on
    the mean sign of D(real) since the last move, and the sign counter starts again."""
    aug = config.augment
    total, count = state.ada_signs[0], state.ada_signs[1]
    moved = adjust_p(state.ada_p, total / jnp.maximum(count, 1), aug.target,
                     config.batch_size * aug.interval, aug.kimg)
    due = (state.step % aug.interval == 0) & (count > 0)
    return state.replace(ada_p=jnp.where(due, moved, state.ada_p),
                         ada_signs=jnp.where(state.step % aug.interval == 0, 0.0, state.ada_signs))


def make_phases(config: ml_collections.ConfigDict, G: Generator, D: Discriminator,
                batch_sharding: NamedSharding | None = None) -> TrainPhases:
    """The phases of one iteration for this config and these networks.

    `batch` is {'image': [B,H,W,C] in [-1, 1], 'label': [B, c_dim]}.  With a
    batch sharding, the latents are drawn sharded the same way, so every
    device generates only its own part of the batch.
    """
    loss = StyleGAN2Loss(config, G, D, batch_sharding)
    return TrainPhases(loss.g_main, loss.g_reg, loss.d_main, loss.d_reg, functools.partial(finish, config))


# The phases, in order; a step's metric 'nonfinite_phase' is 1 + the index of the first one
# whose loss or gradient was not finite (0: none).
PHASE_NAMES = ("g_main", "g_reg", "d_main", "d_reg")


def run_phases(phases: TrainPhases, state: TrainState, batch: dict, g_reg_phase: bool = False,
               d_reg_phase: bool = False) -> tuple[TrainState, dict]:
    """One iteration: the phases due, in the official order, threading the all-finite flag."""
    state, metrics, ok = phases.g_main(state)
    first_bad = jnp.where(ok, 0, 1)

    def run(index, phase, *args):
        nonlocal state, ok, first_bad
        state, more, now_ok = phase(state, *args, ok)
        first_bad = jnp.where(ok & ~now_ok, index + 1, first_bad)
        ok = now_ok
        metrics.update(more)

    if g_reg_phase:
        run(1, phases.g_reg)
    run(2, phases.d_main, batch)
    if d_reg_phase:
        run(3, phases.d_reg, batch)
    state, more = phases.finish(state, ok)
    return state, {**metrics, **more, "nonfinite_phase": first_bad.astype(jnp.int32)}


def regularization_phases(config: ml_collections.ConfigDict, step: int) -> tuple[bool, bool]:
    """(G reg, D reg) due at this step: lazy, every interval steps, from step 0 on."""
    loss = config.loss
    g_reg = loss.pl_weight > 0 and step % loss.g_reg_interval == 0
    d_reg = loss.r1_gamma > 0 and step % loss.d_reg_interval == 0
    return g_reg, d_reg
