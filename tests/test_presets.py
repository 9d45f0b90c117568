"""Every preset loads and builds its networks at its resolution; the official 'auto' rule."""

import glob
import importlib.util
import os

import jax
import jax.numpy as jnp
import pytest

from stylejax.configs import apply_auto_rule, base_config
from stylejax.networks import build_networks
from stylejax.train.validate import validate_config

EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments")
PRESETS = sorted(glob.glob(os.path.join(EXPERIMENTS, "*.py")))


def load(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def test_presets_exist():
    names = {os.path.basename(p)[:-3] for p in PRESETS}
    assert {"default", "ffhq256", "ffhq1024", "cifar10", "lsun_cat256", "lsun_car512", "auto"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: os.path.basename(p)[:-3])
def test_preset_builds(path):
    config = load(path)
    assert set(flat_keys(config)) == set(flat_keys(base_config())), "presets override, never add keys"
    if config.auto:
        apply_auto_rule(config, config.resolution, 8)
    validate_config(config, 8)
    c_dim = 10 if config.conditional else 0
    G, D = build_networks(config, c_dim, 3)
    z = jnp.zeros((1, G.z_dim))
    c = jnp.zeros((1, c_dim)) if c_dim else None
    g_vars = jax.eval_shape(lambda: G.init({"params": jax.random.key(0), "noise": jax.random.key(0)}, z, c))
    img = jax.eval_shape(lambda v: G.apply(v, z, c, noise_mode="const"), g_vars)
    assert img.shape == (1, config.resolution, config.resolution, 3)
    logits = jax.eval_shape(lambda: D.init_with_output(jax.random.key(0), jnp.zeros(img.shape), c)[0])
    assert logits.shape == (1, 1)


def flat_keys(config, prefix=""):
    for k, v in config.items():
        if hasattr(v, "items"):
            yield from flat_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


@pytest.mark.parametrize("res,devices,batch,group,gamma,ema,lr,base", [
    (1024, 8, 32, 4, 0.0002 * 1024 ** 2 / 32, 10.0, 0.002, 32768),
    (256, 8, 64, 4, 0.0002 * 256 ** 2 / 64, 20.0, 0.0025, 16384),
    (256, 1, 16, 4, 0.0002 * 256 ** 2 / 16, 5.0, 0.0025, 16384),
    (32, 2, 64, 4, 0.0002 * 32 ** 2 / 64, 20.0, 0.0025, 16384),
    (512, 4, 32, 4, 0.0002 * 512 ** 2 / 32, 10.0, 0.0025, 32768),
])
def test_auto_rule_matches_official_formulas(res, devices, batch, group, gamma, ema, lr, base):
    config = base_config()
    apply_auto_rule(config, res, devices)
    assert config.batch_size == batch
    assert config.model.mbstd_group_size == group
    assert config.loss.r1_gamma == pytest.approx(gamma)
    assert config.ema_kimg == pytest.approx(ema)
    assert config.optim.g_lr == config.optim.d_lr == lr
    assert config.model.channel_base == base and config.model.mapping_layers == 2
    assert config.ema_rampup == 0.05


def test_official_presets_train_with_ada_and_the_default_experiment_without():
    """stylegan2-ada-pytorch's train.py: --aug=ada, --augpipe=bgc, target 0.6, ada_kimg 500 and
    ada_interval 4 unless told otherwise."""
    for name in ("ffhq256", "ffhq1024", "cifar10", "lsun_cat256", "lsun_car512", "auto"):
        augment = load(os.path.join(EXPERIMENTS, f"{name}.py")).augment
        assert (augment.mode, augment.pipe, augment.p, augment.target, augment.kimg,
                augment.interval) == ("ada", "bgc", 0.0, 0.6, 500, 4), name
    assert load(os.path.join(EXPERIMENTS, "default.py")).augment.mode == "off"
