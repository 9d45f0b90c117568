"""The main command as users run it: a few steps of the default experiment, and bad input."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import pytest

from stylejax.checkpoints.generator import load_generator
from tests.checkpoint_helpers import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.model.channel_base=256", "--config.model.channel_max=32", "--config.model.z_dim=32",
        "--config.model.w_dim=32", "--config.batch_size=8"]


def main(tmp_path, *args, devices=1):
    env = {**subprocess_env(devices), "STYLEJAX_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "stylejax.main", "--config", os.path.join(REPO, "experiments", "default.py"),
           "--workdir", str(tmp_path / "run"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)


@pytest.mark.slow
def test_default_experiment_smoke(tmp_path):
    result = main(tmp_path, *TINY, "--config.num_train_steps=3", "--config.log_every_steps=1",
                  "--config.sample_every_steps=3", "--config.sample_grid=(4, 2)",
                  "--config.metrics_num_samples=64")
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 8 and config["model"]["channel_base"] == 256  # overrides recorded
    assert (run / "samples" / "step_0000003.png").exists()
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(run))
    assert "step 3/3" in result.stderr and "img/s" in result.stderr
    # The default metrics, evaluated at the end of the run.
    (line,) = (run / "metrics.jsonl").read_text().splitlines()
    assert json.loads(line)["step"] == 3 and json.loads(line)["fid_digits"] > 0
    generator = load_generator(str(run))  # the default generator has no noise inputs to restore
    assert generator.step == 3 and not generator.variables["noise_consts"]
    assert generator.G.apply(generator.variables, jnp.zeros((2, 32))).shape == (2, 16, 16, 3)


@pytest.mark.parametrize("args,message", [
    (["--config.no_such_key=1"], "unknown config key 'no_such_key'"),
    (["--config.model.no_such_key=1"], "unknown config key 'no_such_key'"),
    (["--config.batch_size=many"], "--config.batch_size=many"),
    (["--config.dataset=no_such_dataset"], "dataset 'no_such_dataset' is not prepared"),
    (["--config.resolution=64"], "config.resolution is 64"),
    (["--config.num_train_steps=0"], "config.num_train_steps must be >= 1"),
    (["--config.model.modconv=grouped"], "config.model.modconv='grouped' is not one of fused, shared"),
    (["--config.device_batch=2"], "config.device_batch=2 is not a multiple of the minibatch-stddev"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    result = main(tmp_path, *args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_batch_not_divisible_by_device_count(tmp_path):
    result = main(tmp_path, "--config.batch_size=12", devices=8)
    assert result.returncode == 2
    assert "error: config.batch_size=12 is not divisible by the 8 devices" in result.stderr
