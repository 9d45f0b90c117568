"""The compiled train step: phases, non-finite handling, EMA, w_avg, and no retracing."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax.errors import TrainingDivergedError
from stylejax.networks import build_networks
from stylejax.train.loop import check_finite
from stylejax.train.state import create_train_state
from stylejax.train.step import TrainPhases, make_phases, regularization_phases, run_phases
from tests.train_helpers import random_batch, tiny_config


def compiled_phases(config, G, D) -> TrainPhases:
    """One program per phase, as training compiles them (without donation: states are reused)."""
    return TrainPhases(*(jax.jit(phase) for phase in make_phases(config, G, D)))


@pytest.fixture(scope="module")
def setup():
    config = tiny_config()
    G, D = build_networks(config, 0, 3)
    phases = compiled_phases(config, G, D)
    state = create_train_state(config, G, D, jax.random.key(0))
    batch = {k: jnp.asarray(v) for k, v in random_batch(config).items()}
    return config, phases, functools.partial(run_phases, phases), state, batch


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                      jax.tree_util.tree_leaves(b), strict=True))


def test_regularization_schedule():
    config = tiny_config()
    phases = [regularization_phases(config, s) for s in range(33)]
    assert [s for s, (g, _) in enumerate(phases) if g] == list(range(0, 33, 4))
    assert [s for s, (_, d) in enumerate(phases) if d] == [0, 16, 32]
    config.loss.pl_weight = 0.0
    config.loss.r1_gamma = 0.0
    assert not any(g or d for g, d in (regularization_phases(config, s) for s in range(33)))


def test_step_updates_everything_and_compiles_once_per_phase(setup):
    config, phases, step, state, batch = setup
    first = state
    for s in range(18):
        g_reg, d_reg = regularization_phases(config, s)
        state, metrics = step(state, batch, g_reg_phase=g_reg, d_reg_phase=d_reg)
        if s == 0:
            assert {"pl_penalty", "r1_penalty", "g_loss", "d_loss"} <= set(metrics)
            # With the EMA ramp-up off, G_ema moves a fraction beta of the way from G.
            assert not leaves_equal(state.ema_params, first.ema_params)
    # G reg and D reg ran at 0 and 16, G reg also at 4, 8, 12: every phase traced once.
    assert [p._cache_size() for p in phases] == [1] * len(phases)  # noqa: SLF001
    assert int(state.step) == 18 and int(state.nonfinite_total) == 0
    assert not leaves_equal(state.g_params, first.g_params)
    assert not leaves_equal(state.d_params, first.d_params)
    assert float(jnp.abs(state.g_stats["mapping"]["w_avg"]).sum()) > 0  # w_avg tracked
    assert float(state.pl_mean) > 0


def test_non_finite_phase_is_skipped_and_counted(setup):
    config, phases, step, state, batch = setup
    poisoned = {**batch, "image": batch["image"].at[0, 0, 0, 0].set(jnp.nan)}
    new, metrics = step(state, poisoned, g_reg_phase=False, d_reg_phase=False)
    # D saw a NaN real: its update is dropped, not zeroed; G's phase did not touch reals.
    assert leaves_equal(new.d_params, state.d_params)
    assert leaves_equal(new.d_opt_state, state.d_opt_state)
    assert not leaves_equal(new.g_params, state.g_params)
    assert int(metrics["nonfinite_streak"]) == 1 and int(new.nonfinite_total) == 1
    assert int(metrics["nonfinite_phase"]) == 3  # d_main, the first phase to see the NaN
    again, _ = step(new, poisoned, g_reg_phase=False, d_reg_phase=False)
    assert int(again.nonfinite_streak) == 2
    healthy, _ = step(again, batch, g_reg_phase=False, d_reg_phase=False)
    assert int(healthy.nonfinite_streak) == 0 and int(healthy.nonfinite_total) == 2
    assert not leaves_equal(healthy.d_params, state.d_params)


def test_divergence_stops_with_a_clear_message():
    check_finite({"nonfinite_streak": np.int32(4), "nonfinite_phase": np.int32(3)}, limit=5, step=10)
    with pytest.raises(TrainingDivergedError, match=r"step 11 had a non-finite loss or gradient in "
                                                    r"phase d_reg \(5 steps in a row\); its update was "
                                                    r"not applied and nothing of it is saved"):
        check_finite({"nonfinite_streak": np.int32(5), "nonfinite_phase": np.int32(4)}, limit=5, step=11)


def test_same_seed_same_result_and_seed_matters(setup):
    config, phases, step, state, batch = setup
    a, _ = step(state, batch, g_reg_phase=True, d_reg_phase=True)
    b, _ = step(state, batch, g_reg_phase=True, d_reg_phase=True)
    assert leaves_equal(a.g_params, b.g_params) and leaves_equal(a.d_params, b.d_params)
    # Another seed draws other latents from the first phase on (compiling that phase only).
    other = tiny_config()
    other.seed = 1
    G, D = build_networks(other, 0, 3)
    same, _, _ = phases.g_main(state)
    moved, _, _ = jax.jit(make_phases(other, G, D).g_main)(state)
    assert not leaves_equal(same.g_params, moved.g_params)



def test_augmentation_at_p_zero_changes_no_bit_and_p_needs_no_recompile(setup):
    """Fixed augmentation at p = 0 trains exactly as augmentation off; a new p (a traced state
    field) changes the step without compiling it again."""
    config, _, step, state, batch = setup
    augmented = tiny_config()
    augmented.augment.update(mode="fixed", pipe="blit", p=0.0)  # the pipes at p = 0: test_augment
    G, D = build_networks(augmented, 0, 3)
    phases = compiled_phases(augmented, G, D)
    plain, _ = step(state, batch, d_reg_phase=True)
    same, metrics = run_phases(phases, state, batch, d_reg_phase=True)
    assert leaves_equal(same, plain)
    assert float(metrics["ada_p"]) == 0 and -1 <= float(metrics["ada_rt"]) <= 1
    changed, _ = run_phases(phases, state.replace(ada_p=jnp.float32(0.5)), batch, d_reg_phase=True)
    assert not leaves_equal(changed.d_params, plain.d_params)
    assert not leaves_equal(changed.g_params, plain.g_params)
    assert [p._cache_size() for p in phases] == [1, 0, 1, 1, 1]  # noqa: SLF001 (G reg: not run)
