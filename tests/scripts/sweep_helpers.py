"""Sweep files and the sweep command for the sweep tests, with the fake trial of
tests/scripts/sweep_fake_trial.py standing in for stylejax.main (seconds per trial)."""

import math
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKE_TRIAL = os.path.join(REPO, "tests", "scripts", "sweep_fake_trial.py")
DEFAULT = os.path.join(REPO, "experiments", "default.py")


def write_sweep(directory, name: str = "fake", **fields) -> str:
    """A sweep file running the fake trial on the default experiment; `fields` replace entries
    of its dict (given as Python source text)."""
    entries = {
        "config": repr(DEFAULT),
        "command": repr((sys.executable, FAKE_TRIAL)),
        "overrides": repr({"num_train_steps": 10, "metrics": ("fid_digits",)}),
        "space": repr({"optim.g_lr,optim.d_lr": [0.001, 0.002], "loss.r1_gamma": [0.1, 1.0]}),
        "objective": repr(("fid_digits", "minimize")),
        **fields,
    }
    body = "".join(f"        {key}={value},\n" for key, value in entries.items())
    path = os.path.join(str(directory), f"{name}.py")
    with open(path, "w") as f:
        f.write("from optuna.distributions import FloatDistribution, IntDistribution\n\n\n"
                f"def get_sweep():\n    return dict(\n{body}    )\n")
    return path


def sweep_command(sweep: str, root, *args: str) -> list[str]:
    return [sys.executable, "-m", "stylejax.sweep", "--sweep", sweep, "--root", str(root), *args]


def sweep_env(step_seconds: float) -> dict:
    return {**os.environ, "SWEEP_FAKE_STEP_S": str(step_seconds), "JAX_PLATFORMS": "cpu"}


def run_sweep(sweep: str, root, *args: str, step_seconds: float = 0.05,
              timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_command(sweep, root, *args), env=sweep_env(step_seconds),
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def fake_objective(g_lr: float, r1_gamma: float) -> float:
    """What the fake trial reports, computed here independently of its code."""
    return abs(math.log10(g_lr / 0.002)) + r1_gamma


def events(root, slot: int) -> list[str]:
    """The fake trial's 'start STEP' / 'end' lines of one trial."""
    with open(os.path.join(str(root), f"trial_{slot:04d}", "events")) as f:
        return f.read().split("\n")[:-1]
