"""Shared pieces of the checkpoint, resume and sampling tests: run directories without training,
subprocess environments, restoring a run's state, comparing states bit for bit."""

import glob
import hashlib
import os
import sys

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from stylejax.checkpoints import Checkpoints
from stylejax.networks import build_networks
from stylejax.train.loop import write_config
from stylejax.train.programs import make_mesh
from stylejax.train.state import create_train_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_CONFIG = os.path.join(REPO, "tests", "scripts", "tiny_run.py")


def subprocess_env(devices: int | None = None) -> dict:
    """The environment of a test subprocess: `devices` simulated CPU devices (None: as many as
    this process has), with the session's XLA flags, so that its programs load from the session's
    compilation cache (tests/conftest.py)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    if devices is not None:
        session_flags = os.environ.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{session_flags} --xla_force_host_platform_device_count={devices}"
    return env


def main_command(workdir, data_dir, *overrides: str) -> list[str]:
    """python -m stylejax.main on the tiny run config."""
    return [sys.executable, "-m", "stylejax.main", f"--config={RUN_CONFIG}", f"--workdir={workdir}",
            f"--config.data_dir={data_dir}", *overrides]


def restore_state(workdir, config, step: int | None = None):
    """The TrainState of a run's checkpoint, restored onto this process's devices."""
    mesh = make_mesh()
    G, D = build_networks(config, 0, 3)
    init = jax.jit(lambda key: create_train_state(config, G, D, key),
                   out_shardings=NamedSharding(mesh, PartitionSpec()))
    with Checkpoints(str(workdir), read_only=True) as checkpoints:
        return checkpoints.restore(jax.eval_shape(init, jax.random.key(0)), step)


def trained_looking(state):
    """An initial state with every field moved as training would move it: G_ema apart from G,
    w_avg away from zero, the noise switched on, the counters set."""
    def ema(path, x):
        return x + 0.5 if "noise_strength" in jax.tree_util.keystr(path) else x * 0.9
    w_avg = state.g_stats["mapping"]["w_avg"]
    return state.replace(
        ema_params=jax.tree_util.tree_map_with_path(ema, state.g_params),
        g_stats={"mapping": {"w_avg": w_avg + jax.numpy.linspace(-1.0, 1.0, w_avg.shape[0])}},
        pl_mean=state.pl_mean + 0.25, ada_p=state.ada_p + 0.125, ada_signs=state.ada_signs + 5.0,
        nonfinite_total=state.nonfinite_total + 3)


def save_init_checkpoint(workdir, config, step: int, c_dim: int = 0, perturb=trained_looking):
    """A run directory without training: config.json and an initial state, changed by
    `perturb`, saved as the checkpoint of `step` on this process's devices. Returns the state."""
    replicated = NamedSharding(make_mesh(), PartitionSpec())
    G, D = build_networks(config, c_dim, 3)
    state = jax.jit(lambda key: create_train_state(config, G, D, key),
                    out_shardings=replicated)(jax.random.key(0))
    state = perturb(state).replace(step=jax.device_put(np.int32(step), replicated))
    os.makedirs(workdir, exist_ok=True)
    write_config(config, str(workdir))
    with Checkpoints(str(workdir), metadata={"c_dim": c_dim, "img_channels": 3}) as checkpoints:
        checkpoints.save(step, state, force=True)
    return state


def flat_leaves(tree) -> dict[str, np.ndarray]:
    return {jax.tree_util.keystr(p): np.asarray(jax.device_get(v))
            for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def assert_bitwise_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """Two flat_leaves() dicts hold the same names, dtypes, shapes and bits."""
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name].dtype, a[name].shape) == (b[name].dtype, b[name].shape), name
        assert a[name].tobytes() == b[name].tobytes(), name


def truncate_arrays(step_dir) -> None:
    """Cuts every array data file of a checkpoint step in half, as a full disk or a bad copy would."""
    for path in glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True):
        os.truncate(path, os.path.getsize(path) // 2)


def flip_array_bytes(step_dir) -> None:
    """Inverts 4 bytes in the middle of the largest array data file, its size unchanged, as a bad
    disk or copy would. Incompressible arrays are stored as they are, so the files still read
    (without checksums the damage would go unnoticed)."""
    path = max(glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True),
               key=os.path.getsize)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        data = f.read(4)
        f.seek(-4, os.SEEK_CUR)
        f.write(bytes(b ^ 0xFF for b in data))


def snapshot(directory) -> dict[str, str]:
    """Every file under `directory` with a hash of its bytes: to show nothing was written."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha1(f.read()).hexdigest()
    return out
