"""The generator of a training run, or of an official network file, restored for sampling:
G_ema, w_avg and the constant noise.

The networks are rebuilt from the run's config.json and the dataset-derived sizes (label count,
image channels) saved with each checkpoint, so sampling needs neither the dataset nor the
training flags. Only the arrays sampling uses are read (a partial orbax restore), onto one
device, and the checkpoint directory is opened read-only. `step='best'` reads the best
checkpoint (WORKDIR/checkpoints_best, by the run's first metric) instead of a regular one.
An official .pkl (stylejax.official) is read without running any of its code.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections

from stylejax.checkpoints.best import best_metric
from stylejax.checkpoints.manager import Checkpoints
from stylejax.configs import base_config
from stylejax.errors import CheckpointError
from stylejax.models import Generator
from stylejax.networks import build_networks
from stylejax.official import is_network_file, load_network_file
from stylejax.steps import BEST


@dataclasses.dataclass(frozen=True)
class TrainedGenerator:
    """G, rebuilt from the run's config, and G_ema's variables of checkpoint `step`."""

    G: Generator
    variables: dict  # {'params': G_ema's, 'stats': {'mapping': {'w_avg'}}, 'noise_consts': ...}
    step: int  # 0 for a network file
    config: ml_collections.ConfigDict  # a network file's: the base config with its architecture


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The run's resolved config, as python -m stylejax.main wrote it."""
    path = os.path.join(workdir, "config.json")
    try:
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except FileNotFoundError:
        raise CheckpointError(f"{path} not found: --workdir must be the directory a training run "
                              "wrote (python -m stylejax.main ... --workdir DIR)") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path} ({e}); restore it from the run's "
                              "--config and overrides") from None


def _from_network_file(path: str, device: jax.Device) -> TrainedGenerator:
    network = load_network_file(path)
    config = base_config()
    network.architecture.apply_to(config, source=path)
    G, _ = build_networks(config, network.architecture.c_dim, network.architecture.img_channels)
    return TrainedGenerator(G, jax.device_put(network.G_ema, device), 0, config)


def load_generator(source: str, step: int | str | None = None,
                   device: jax.Device | None = None) -> TrainedGenerator:
    """G_ema of `step` (the latest when None, the best checkpoint when 'best') of the run whose
    workdir is `source`, or of the official network file `source` (a .pkl), on `device` (the
    first)."""
    device = device or jax.devices()[0]
    if is_network_file(source):
        if step is not None:
            raise CheckpointError(f"{source} is a network file, which has no checkpoint steps: "
                                  "drop --step")
        return _from_network_file(source, device)
    config = read_config(source)
    sharding = jax.sharding.SingleDeviceSharding(device)
    best_by = best_metric(config, source) if step == BEST else None
    with Checkpoints(source, read_only=True, best_by=best_by) as checkpoints:
        step = checkpoints.resolve_step(None if step == BEST else step)
        sizes = checkpoints.metadata(step)
        try:
            G, _ = build_networks(config, sizes["c_dim"], sizes["img_channels"])
        except (AttributeError, KeyError) as e:
            raise CheckpointError(f"{source}/config.json lacks {e}: it was not written by this "
                                  "version of stylejax.main") from None
        c = jnp.zeros((1, G.c_dim)) if G.c_dim else None
        shapes = jax.eval_shape(lambda key: G.init({"params": key, "noise": key},
                                                   jnp.zeros((1, G.z_dim)), c), jax.random.key(0))
        shapes = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)
        target = {"ema_params": shapes["params"], "g_stats": shapes["stats"],
                  "noise_consts": shapes.get("noise_consts", {})}
        restored = checkpoints.restore(target, step, partial=True)
    variables = {"params": restored["ema_params"], "stats": restored["g_stats"],
                 "noise_consts": restored["noise_consts"]}
    return TrainedGenerator(G, variables, step, config)
