"""A checkpoint restores onto any device count, and from two processes into one: the same bits,
and the same samples. And a stop signal to one process of a run stops them all at the same step."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from stylejax.sample import main as sample
from tests.checkpoint_helpers import (
    REPO,
    assert_bitwise_equal,
    flat_leaves,
    restore_state,
    save_init_checkpoint,
    subprocess_env,
)
from tests.test_distributed import free_port
from tests.train_helpers import tiny_config

SCRIPT = os.path.join(REPO, "tests", "scripts", "checkpoint_roundtrip.py")
STOP_SCRIPT = os.path.join(REPO, "tests", "scripts", "stop_agreement.py")


def start(devices: int, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env=subprocess_env(devices), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(*procs: subprocess.Popen) -> None:
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]


def saved(npz) -> tuple[int, dict[str, np.ndarray]]:
    data = dict(np.load(npz))
    return int(data.pop("devices")), data


@pytest.mark.slow
def test_eight_devices_to_one_and_back_same_bits_and_samples(tmp_path):
    finish(start(8, SCRIPT, "--workdir", tmp_path / "on8", "--out", tmp_path / "on8.npz"))
    devices, leaves = saved(tmp_path / "on8.npz")
    assert devices == 8
    assert_bitwise_equal(flat_leaves(restore_state(tmp_path / "on8", tiny_config())), leaves)

    # The same seeds draw the same pictures here (1 device) and with 8 devices.
    grid = ["grid", "--workdir", tmp_path / "on8", "--seeds", "0-8", "--noise_mode", "random"]
    assert sample([str(a) for a in [*grid, "--outdir", tmp_path / "png1"]]) == 0
    finish(start(8, "-m", "stylejax.sample", *grid, "--outdir", tmp_path / "png8"))
    one, eight = (np.asarray(Image.open(tmp_path / d / "grid.png")) for d in ("png1", "png8"))
    np.testing.assert_array_equal(one, eight)

    state = save_init_checkpoint(tmp_path / "on1", tiny_config(), step=7)
    finish(start(8, SCRIPT, "--restore", "--workdir", tmp_path / "on1", "--out", tmp_path / "to8.npz"))
    devices, leaves = saved(tmp_path / "to8.npz")
    assert devices == 8
    assert_bitwise_equal(leaves, flat_leaves(state))


@pytest.mark.slow
def test_a_two_process_checkpoint_restores_in_one_process(tmp_path):
    coordinator = f"127.0.0.1:{free_port()}"
    finish(*[start(4, SCRIPT, "--workdir", tmp_path / "run", "--out", tmp_path / "saved.npz",
                   "--coordinator", coordinator, "--process-id", str(i), "--num-processes", "2")
             for i in range(2)])
    devices, leaves = saved(tmp_path / "saved.npz")
    assert devices == 8
    assert_bitwise_equal(flat_leaves(restore_state(tmp_path / "run", tiny_config())), leaves)


def test_a_signal_to_one_process_stops_all():
    coordinator = f"127.0.0.1:{free_port()}"
    procs = [start(1, STOP_SCRIPT, "--coordinator", coordinator, "--process-id", str(i),
                   "--num-processes", "2") for i in range(2)]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    for i, (proc, out) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, out[-3000:]
        assert f"process {i}: before=None after={int(signal.SIGTERM)}" in out, out[-3000:]
