"""One training iteration as a pure function: G main, (G reg), D main, (D reg).

The phases run in the official order, each with its own optimizer update, and
each draws its latents from `fold_in(root_key, step)`, so an iteration depends
only on (state, batch, seed).  Training compiles each phase as its own program
(train/programs.py), once; the regularisation phases run when they are due.  With
config.device_batch, a phase runs each device's share of the batch in rounds.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import NamedSharding

from stylejax.losses import discriminator_loss, generator_loss, path_length_penalty, path_lengths, r1_penalty
from stylejax.models import Discriminator, Generator, mix_styles
from stylejax.train.state import TrainState, optimizers


def select(ok: jnp.ndarray, new, old):
    """`new` where the phase was finite, else `old`: a non-finite phase changes nothing."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def all_finite(loss: jnp.ndarray, grads) -> jnp.ndarray:
    """One check over the gradients raveled into one vector, as the flattened optimizer ravels
    them: XLA shares the copy, and the program gets one kernel instead of one per parameter."""
    flat, _ = jax.flatten_util.ravel_pytree(grads)
    return jnp.isfinite(loss) & jnp.all(jnp.isfinite(flat))


def ema_beta(config: ml_collections.ConfigDict, step: jnp.ndarray) -> jnp.ndarray:
    """Per-step G_ema decay: half-life ema_kimg, optionally ramped up with the images seen."""
    batch = config.batch_size
    ema_nimg = jnp.asarray(config.ema_kimg * 1000.0, jnp.float32)
    if config.ema_rampup is not None:
        ema_nimg = jnp.minimum(ema_nimg, step.astype(jnp.float32) * batch * config.ema_rampup)
    return 0.5 ** (batch / jnp.maximum(ema_nimg, 1e-8))


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


def make_phases(config: ml_collections.ConfigDict, G: Generator, D: Discriminator,
                batch_sharding: NamedSharding | None = None) -> TrainPhases:
    """The phases of one iteration for this config and these networks.

    `batch` is {'image': [B,H,W,C] in [-1, 1], 'label': [B, c_dim]}.  With a
    batch sharding, the latents are drawn sharded the same way, so every
    device generates only its own part of the batch.
    """
    g_opt, d_opt = optimizers(config)
    loss_cfg = config.loss
    root_key = jax.random.key(config.seed)
    batch_size = config.batch_size
    num_ws = G.num_ws

    def shard(x):
        return x if batch_sharding is None else jax.lax.with_sharding_constraint(x, batch_sharding)

    num_shards = 1 if batch_sharding is None else batch_sharding.mesh.size
    share = batch_size // num_shards
    rounds = share // min(config.device_batch or share, share)

    def take_round(tree, r):
        """Round r of a batch-sized tree: each device's r-th slice of its own share, so a round
        stays on the devices that hold it and keeps the batch's minibatch-std groups."""
        def piece(x):
            parts = x.reshape(num_shards, rounds, -1, *x.shape[1:])
            return shard(parts[:, r].reshape(-1, *x.shape[1:]))
        return tree if rounds == 1 else jax.tree_util.tree_map(piece, tree)

    def mean_over_rounds(fn, tree):
        """fn(round of tree, round index) averaged over the rounds (the official batch_gpu).
        fn returns what is linear in its round's means (losses, gradients, the updated w_avg),
        so the average is the whole batch's.  Unrolled: convolutions inside lax.scan leave
        XLA CPU's fast library."""
        outs = [fn(take_round(tree, r), r) for r in range(rounds)]
        if rounds == 1:
            return outs[0]
        return jax.tree_util.tree_map(lambda *xs: sum(xs) / rounds, *outs)

    def round_key(key, r):
        """The noise inputs of round r: rounds draw their own noise, one round draws the batch's."""
        return key if rounds == 1 else jax.random.fold_in(key, r)

    def latents(key, n):
        z_key, c_key = jax.random.split(key)
        z = shard(jax.random.normal(z_key, (n, G.z_dim)))
        c = None
        if G.c_dim:
            c = shard(jax.nn.one_hot(jax.random.randint(c_key, (n,), 0, G.c_dim), G.c_dim))
        return z, c

    def mixing(key, n):
        """(second latents, layer cutoff) of style-mixing regularisation for a batch of n;
        (None, None) when it is off."""
        if loss_cfg.style_mixing_prob == 0:
            return None, None
        z_key, cut_key, prob_key = jax.random.split(key, 3)
        cutoff = jax.random.randint(cut_key, (), 1, num_ws)
        cutoff = jnp.where(jax.random.uniform(prob_key) < loss_cfg.style_mixing_prob, cutoff, num_ws)
        return shard(jax.random.normal(z_key, (n, G.z_dim))), cutoff

    def mapping(g_params, state, z, c, mix_z, cutoff):
        """ws, style-mixed with mix_z's; updates w_avg as the official training does."""
        variables = {**state.generator_variables(ema=False), "params": g_params}
        ws, updated = G.apply(variables, z, c, update_emas=True, mutable=["stats"],
                              method=G.map_latents)
        if mix_z is not None:
            ws = mix_styles(ws, G.apply(variables, mix_z, c, method=G.map_latents), cutoff)
        return ws, updated["stats"]

    def synthesis(g_params, state, ws, key):
        variables = {**state.generator_variables(ema=False), "params": g_params}
        return G.apply(variables, ws, rngs={"noise": key}, method=G.synthesize)

    def discriminate(d_params, img, c):
        """Minibatch-stddev groups of consecutive images (the official grouping of a per-GPU batch
        of one group): within a device's share, and the same on any device count and in rounds."""
        groups = img.shape[0] // min(D.mbstd_group_size, img.shape[0])
        return D.apply({"params": d_params}, img, c, mbstd_shards=groups)

    def apply_update(ok, opt, grads, opt_state, params):
        updates, new_opt_state = opt.update(grads, opt_state, params)
        return select(ok, optax.apply_updates(params, updates), params), select(ok, new_opt_state, opt_state)

    def step_key(state, phase):
        return jax.random.fold_in(jax.random.fold_in(root_key, state.step), phase)

    def g_main(state):
        with jax.named_scope("g_main"):  # the scopes name the phases in profiles
            key = step_key(state, 0)
            z, c = latents(jax.random.fold_in(key, 0), batch_size)
            map_key, noise_key = jax.random.split(jax.random.fold_in(key, 1))
            mix_z, cutoff = mixing(map_key, batch_size)

            def loss_fn(g_params, inputs, r):
                ws, stats = mapping(g_params, state, inputs["z"], inputs["c"], inputs["mix_z"], cutoff)
                img = synthesis(g_params, state, ws, round_key(noise_key, r))
                logits = discriminate(state.d_params, img, inputs["c"])
                return generator_loss(logits), (stats, jnp.mean(logits))

            grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
            (loss, (stats, fake_score)), grads = mean_over_rounds(
                lambda inputs, r: grad_fn(state.g_params, inputs, r), dict(z=z, c=c, mix_z=mix_z))
            ok = all_finite(loss, grads)
            params, opt_state = apply_update(ok, g_opt, grads, state.g_opt_state, state.g_params)
            state = state.replace(g_params=params, g_opt_state=opt_state,
                                  g_stats=select(ok, stats, state.g_stats))
            return state, dict(g_loss=loss, fake_score_g=fake_score), ok

    def g_reg(state, ok):
        """In one round: each round would update the path-length mean the penalty uses."""
        with jax.named_scope("g_reg"):
            key = step_key(state, 1)
            n = batch_size // loss_cfg.pl_batch_shrink
            z, c = latents(jax.random.fold_in(key, 0), n)
            map_key, noise_key, probe_key = jax.random.split(jax.random.fold_in(key, 1), 3)
            mix_z, cutoff = mixing(map_key, n)

            def loss_fn(g_params):
                ws, stats = mapping(g_params, state, z, c, mix_z, cutoff)
                lengths = path_lengths(lambda w: synthesis(g_params, state, w, noise_key), ws,
                                       probe_key)
                penalty, pl_mean = path_length_penalty(lengths, state.pl_mean, loss_cfg.pl_decay)
                loss = jnp.mean(penalty) * loss_cfg.pl_weight * loss_cfg.g_reg_interval
                return loss, (stats, pl_mean, penalty)

            (loss, (stats, pl_mean, penalty)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.g_params)
            ok_reg = all_finite(loss, grads)
            params, opt_state = apply_update(ok_reg, g_opt, grads, state.g_opt_state, state.g_params)
            state = state.replace(g_params=params, g_opt_state=opt_state,
                                  g_stats=select(ok_reg, stats, state.g_stats),
                                  pl_mean=select(ok_reg, pl_mean, state.pl_mean))
            return state, dict(pl_penalty=jnp.mean(penalty), pl_mean=pl_mean), ok & ok_reg

    def d_main(state, batch, ok):
        with jax.named_scope("d_main"):
            key = step_key(state, 2)
            z, c = latents(jax.random.fold_in(key, 0), batch_size)
            map_key, noise_key = jax.random.split(jax.random.fold_in(key, 1))
            mix_z, cutoff = mixing(map_key, batch_size)
            real_c = batch["label"] if G.c_dim else None

            def loss_fn(d_params, inputs, r):
                ws, stats = mapping(state.g_params, state, inputs["z"], inputs["c"], inputs["mix_z"],
                                    cutoff)
                fake = jax.lax.stop_gradient(
                    synthesis(state.g_params, state, ws, round_key(noise_key, r)))
                fake_logits = discriminate(d_params, fake, inputs["c"])
                real_logits = discriminate(d_params, inputs["image"], inputs["real_c"])
                loss = discriminator_loss(real_logits, fake_logits)
                return loss, (stats, jnp.mean(real_logits), jnp.mean(fake_logits))

            grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
            inputs = dict(z=z, c=c, mix_z=mix_z, image=batch["image"], real_c=real_c)
            (loss, (stats, real_score, fake_score)), grads = mean_over_rounds(
                lambda inputs, r: grad_fn(state.d_params, inputs, r), inputs)
            ok_d = all_finite(loss, grads)
            params, opt_state = apply_update(ok_d, d_opt, grads, state.d_opt_state, state.d_params)
            state = state.replace(d_params=params, d_opt_state=opt_state,
                                  g_stats=select(ok_d, stats, state.g_stats))
            metrics = dict(d_loss=loss, real_score=real_score, fake_score=fake_score)
            return state, metrics, ok & ok_d

    def d_reg(state, batch, ok):
        with jax.named_scope("d_reg"):
            real_c = batch["label"] if G.c_dim else None

            def loss_fn(d_params, inputs):
                penalty, _ = r1_penalty(lambda x: discriminate(d_params, x, inputs["real_c"]),
                                        inputs["image"])
                loss = jnp.mean(penalty) * (loss_cfg.r1_gamma / 2) * loss_cfg.d_reg_interval
                return loss, jnp.mean(penalty)

            grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
            (loss, penalty), grads = mean_over_rounds(
                lambda inputs, _: grad_fn(state.d_params, inputs),
                dict(image=batch["image"], real_c=real_c))
            ok_reg = all_finite(loss, grads)
            params, opt_state = apply_update(ok_reg, d_opt, grads, state.d_opt_state, state.d_params)
            state = state.replace(d_params=params, d_opt_state=opt_state)
            return state, dict(r1_penalty=penalty), ok & ok_reg

    def finish(state, ok):
        """G_ema, the step counter and the non-finite counters, once every phase has run."""
        with jax.named_scope("ema"):
            beta = ema_beta(config, state.step)
            ema = jax.tree_util.tree_map(lambda p, e: p + beta * (e - p), state.g_params,
                                         state.ema_params)
        streak = jnp.where(ok, 0, state.nonfinite_streak + 1)
        state = state.replace(step=state.step + 1, ema_params=ema, nonfinite_streak=streak,
                              nonfinite_total=state.nonfinite_total + (~ok).astype(jnp.int32))
        return state, dict(nonfinite_streak=streak, nonfinite_total=state.nonfinite_total)

    return TrainPhases(g_main, g_reg, d_main, d_reg, finish)


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
