"""The generator of a training run, restored for sampling: G_ema, w_avg and the constant noise.

The networks are rebuilt from the run's config.json and the dataset-derived sizes (label count,
image channels) saved with each checkpoint, so sampling needs neither the dataset nor the
training flags. Only the arrays sampling uses are read (a partial orbax restore), onto one
device, and the checkpoint directory is opened read-only. `step='best'` reads the best
checkpoint (WORKDIR/checkpoints_best, by the run's first metric) instead of a regular one.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections

from stylejax.checkpoints.best import best_metric
from stylejax.checkpoints.manager import Checkpoints
from stylejax.errors import CheckpointError
from stylejax.models import Generator
from stylejax.steps import BEST
from stylejax.train.state import build_networks


@dataclasses.dataclass(frozen=True)
class TrainedGenerator:
    """G, rebuilt from the run's config, and G_ema's variables of checkpoint `step`."""

    G: Generator
    variables: dict  # {'params': G_ema's, 'stats': {'mapping': {'w_avg'}}, 'noise_consts': ...}
    step: int
    config: ml_collections.ConfigDict


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


def load_generator(workdir: str, step: int | str | None = None,
                   device: jax.Device | None = None) -> TrainedGenerator:
    """G_ema of `step` (the latest when None, the best checkpoint when 'best') of the run in
    `workdir`, on `device` (the first)."""
    config = read_config(workdir)
    sharding = jax.sharding.SingleDeviceSharding(device or jax.devices()[0])
    best_by = best_metric(config, workdir) if step == BEST else None
    with Checkpoints(workdir, read_only=True, best_by=best_by) as checkpoints:
        step = checkpoints.resolve_step(None if step == BEST else step)
        sizes = checkpoints.metadata(step)
        try:
            G, _ = build_networks(config, sizes["c_dim"], sizes["img_channels"])
        except (AttributeError, KeyError) as e:
            raise CheckpointError(f"{workdir}/config.json lacks {e}: it was not written by this "
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
