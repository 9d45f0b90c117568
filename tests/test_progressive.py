"""Progressive growing: the official schedule of the level of detail, the reals faded to it, and
a train step in the middle of a fade, resumed from a checkpoint."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from clu import metric_writers
from PIL import Image

from stylejax.configs import base_config
from stylejax.errors import ConfigError
from stylejax.networks import build_networks
from stylejax.train.loop import SampleGrid
from stylejax.train.progressive import fade_reals, lod_at
from stylejax.train.state import create_train_state
from stylejax.train.step import TrainPhases, make_phases, run_phases
from stylejax.train.validate import validate_config
from tests.checkpoint_helpers import assert_bitwise_equal, flat_leaves, restore_state, save_init_checkpoint
from tests.train_helpers import random_batch, tiny_config


def official_lod(kimg, resolution, initial, training_kimg, transition_kimg) -> float:
    """NVlabs/stylegan training_schedule's lod, step by step in plain Python."""
    phase_dur = training_kimg + transition_kimg
    phase_idx = math.floor(kimg / phase_dur)
    phase_kimg = kimg - phase_idx * phase_dur
    lod = math.log2(resolution) - math.floor(math.log2(initial)) - phase_idx
    lod -= max(phase_kimg - training_kimg, 0.0) / transition_kimg
    return max(lod, 0.0)


def growing(resolution=1024, batch=32, initial=8, training=600.0, transition=600.0):
    config = base_config()
    config.resolution, config.batch_size = resolution, batch
    config.model.generation = "stylegan1"
    config.progressive.update(enabled=True, initial_resolution=initial, training_kimg=training,
                              transition_kimg=transition)
    return config


def test_lod_follows_the_official_schedule():
    config = growing()
    steps = np.array([0, 1, 18749, 18750, 28125, 37499, 37500, 75000, 150000, 262500, 300000, 781250])
    lods = jax.jit(lambda s: lod_at(config, s))(steps)
    expected = [official_lod(s * 32 / 1000, 1024, 8, 600, 600) for s in steps]
    np.testing.assert_allclose(lods, expected, atol=1e-5)
    # 8x8 for 600 kimg, 16x16 faded in over the next 600, ..., 1024x1024 from 8400 kimg on
    assert expected[:8] == [7, 7, 7, 7, 6.5, pytest.approx(6, abs=1e-4), 6, 5] and expected[-1] == 0


def block_means(x: np.ndarray, size: int) -> np.ndarray:
    n, h, w, c = x.shape
    means = x.reshape(n, h // size, size, w // size, size, c).mean(axis=(2, 4))
    return np.repeat(np.repeat(means, size, axis=1), size, axis=2)


def test_reals_are_faded_as_the_official_process_reals():
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    fade = jax.jit(fade_reals)
    np.testing.assert_allclose(fade(x, 0.0), x, atol=0)
    np.testing.assert_allclose(fade(x, 1.0), block_means(x, 2), atol=1e-6)
    np.testing.assert_allclose(fade(x, 1.25), 0.75 * block_means(x, 2) + 0.25 * block_means(x, 4),
                               atol=1e-6)
    np.testing.assert_allclose(fade(x, 2.0), block_means(x, 4), atol=1e-6)  # 4x4: the coarsest
    np.testing.assert_allclose(fade(x, 2.5), block_means(x, 4), atol=1e-6)


@pytest.mark.parametrize("change, message", [
    (dict(generation="stylegan2"), "config.progressive.enabled needs config.model.generation"),
    (dict(initial_resolution=12), "initial_resolution must be a power of two from 4 to"),
    (dict(training_kimg=0.0, transition_kimg=0.0), "must be >= 0, not both 0"),
])
def test_bad_schedules_are_refused(change, message):
    config = growing(resolution=32)
    if "generation" in change:
        config.model.generation = change.pop("generation")
    config.progressive.update(change)
    with pytest.raises(ConfigError, match=message):
        validate_config(config, 1)


@pytest.fixture(scope="module")
def fading():
    """4 images a step, 8x8 for 1 step, 16x16 faded in over 2: lod 1, 1, 0.5, 0 at steps 0-3."""
    config = tiny_config()
    config.batch_size = 4
    config.model.generation = "stylegan1"
    config.loss.pl_weight = 0.0
    config.progressive.update(enabled=True, initial_resolution=8, training_kimg=0.004,
                              transition_kimg=0.008)
    G, D = build_networks(config, 0, 3)
    phases = TrainPhases(*(jax.jit(phase) for phase in make_phases(config, G, D)))
    batch = {k: jnp.asarray(v) for k, v in random_batch(config).items()}
    return config, functools.partial(run_phases, phases, batch=batch, d_reg_phase=True)


def test_a_step_in_the_middle_of_a_fade_resumes_exactly(tmp_path, fading):
    config, step = fading
    state = save_init_checkpoint(tmp_path, config, step=2, perturb=lambda s: s)
    after, metrics = step(state)
    assert float(metrics["lod"]) == 0.5
    resumed, _ = step(restore_state(tmp_path, config))
    assert_bitwise_equal(flat_leaves(resumed), flat_leaves(after))
    # at lod 0.5 the 8x8 ToRGB and fromRGB are blended in (and learn); the 4x4 ones are not
    for name in ("g_params", "d_params"):
        before, now = flat_leaves(getattr(state, name)), flat_leaves(getattr(after, name))
        still = {k for k in before if np.array_equal(before[k], now[k])}
        assert still == {k for k in before if "'b4_torgb'" in k or "'b4_fromrgb'" in k}, name


def test_adam_starts_afresh_where_a_fade_starts(fading):
    """As the official reset_opt_for_new_lod: step 2 starts the fade (floor(lod) 1 -> 0), step 1
    changes nothing (lod 1 -> 1)."""
    config, step = fading
    G, D = build_networks(config, 0, 3)
    fresh = create_train_state(config, G, D, jax.random.key(0))
    used = fresh.replace(g_opt_state=jax.tree_util.tree_map(lambda x: x + 1, fresh.g_opt_state),
                         d_opt_state=jax.tree_util.tree_map(lambda x: x + 1, fresh.d_opt_state))
    for at, same in ((2, True), (1, False)):
        a, _ = step(fresh.replace(step=jnp.int32(at)))
        b, _ = step(used.replace(step=jnp.int32(at)))
        equal = [np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a.g_params),
                                                      jax.tree_util.tree_leaves(b.g_params), strict=True)]
        assert all(equal) == same, at  # (Adam's beta1 0: layers without gradient never move)


def test_sample_grids_show_the_level_of_detail_being_trained(tmp_path):
    config = tiny_config()
    config.model.generation = "stylegan1"
    config.sample_grid = (2, 1)
    config.progressive.update(enabled=True, initial_resolution=8, training_kimg=1.0,
                              transition_kimg=1.0)
    G, D = build_networks(config, 0, 3)
    state = create_train_state(config, G, D, jax.random.key(0))
    grids = SampleGrid(config, G, 0, str(tmp_path))
    images = {}
    for step in (0, 1000):  # lod 1 (8x8), then lod 0
        grids(state.replace(step=jnp.int32(step)), step, metric_writers.LoggingWriter())
        images[step] = np.asarray(Image.open(tmp_path / "samples" / f"step_{step:07d}.png"), int)
    cell = images[0][:16, :16]  # the first sample, 8x8 upscaled to 16x16 (up to the lerp's rounding)
    assert np.abs(cell - np.repeat(np.repeat(cell[::2, ::2], 2, 0), 2, 1)).max() <= 1
    assert np.abs(images[1000] - images[0]).max() > 8
