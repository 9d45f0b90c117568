"""Sweep files: their shape, the trials' command lines, and bad input caught before any trial
(in-process here; tests/test_sweep_run.py checks that the command reports it in one line)."""

import json
import os
import subprocess
import sys

import pytest
from optuna.distributions import FloatDistribution

from stylejax.sweeps.checks import check_sweep
from stylejax.sweeps.definition import load_sweep
from stylejax.sweeps.errors import SweepError
from tests.scripts.sweep_helpers import DEFAULT, REPO, write_sweep


def test_grid_space_flags_and_budget(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, "lr_gamma", space=repr(
        {"optim.g_lr,optim.d_lr": [0.001, 0.002, 0.004], "loss.r1_gamma": [0.1, 1.0]})))
    check_sweep(sweep)
    assert sweep.name == "lr_gamma" and sweep.method == "grid" and sweep.trials == 6
    assert sweep.grid()[:3] == [{"optim.g_lr,optim.d_lr": 0.001, "loss.r1_gamma": 0.1},
                                {"optim.g_lr,optim.d_lr": 0.001, "loss.r1_gamma": 1.0},
                                {"optim.g_lr,optim.d_lr": 0.002, "loss.r1_gamma": 0.1}]
    command = sweep.command_line(sweep.grid()[5], "/runs/trial_0005")
    assert command[:2] == list(sweep.command)
    assert command[2:] == [
        "--config", DEFAULT, "--workdir", "/runs/trial_0005",
        "--config.num_train_steps=10", "--config.metrics=('fid_digits',)",
        "--config.optim.g_lr=0.004", "--config.optim.d_lr=0.004", "--config.loss.r1_gamma=1.0"]


def test_the_overrides_mean_to_stylejax_main_what_the_sweep_says(tmp_path):
    """The text of each override, parsed by stylejax.main's own flag parser, gives back the value
    (floats, ints, tuples, strings, booleans)."""
    sweep = load_sweep(write_sweep(tmp_path, overrides=repr(
        {"num_train_steps": 7, "metrics": ("fid_digits", "kid_digits"), "xflip": True,
         "model.modconv": "fused", "optim.beta2": 0.999})))
    params = {"optim.g_lr,optim.d_lr": 1.5e-05, "loss.r1_gamma": 0.1}
    script = ("import sys; from stylejax.main import FLAGS, parse_flags; parse_flags(sys.argv); "
              "print(FLAGS.config.to_json())")
    result = subprocess.run([sys.executable, "-c", script, "--config", DEFAULT, "--workdir", "w",
                             *sweep.flags(params)], capture_output=True, text=True, timeout=120)
    config = json.loads(result.stdout)
    assert config["num_train_steps"] == 7 and config["metrics"] == ["fid_digits", "kid_digits"]
    assert config["xflip"] is True and config["model"]["modconv"] == "fused"
    assert config["optim"]["beta2"] == 0.999
    assert config["optim"]["g_lr"] == config["optim"]["d_lr"] == 1.5e-05
    assert config["loss"]["r1_gamma"] == 0.1


def test_random_search_needs_a_budget_and_takes_ranges(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, method="'random'", trials="5", seed="7", space=repr(
        {"optim.g_lr": FloatDistribution(1e-4, 1e-2, log=True), "loss.r1_gamma": [0.1, 1.0]})))
    check_sweep(sweep)
    assert (sweep.method, sweep.trials, sweep.seed) == ("random", 5, 7)
    assert sweep.space["optim.g_lr"] == FloatDistribution(1e-4, 1e-2, log=True)


@pytest.mark.parametrize("fields,message", [
    ({"space": repr({"optim.glr": [0.001]})},
     "space key 'optim.glr' is not in the config of"),
    ({"space": repr({"optim.g_lr,optim.dlr": [0.001]})},
     "space key 'optim.dlr' is not in the config of"),
    ({"overrides": repr({"num_steps": 10})},
     "overrides key 'num_steps' is not in the config of"),
    ({"space": "{}"}, "the space is empty; give at least one config key"),
    ({"space": repr({"loss.r1_gamma": []})}, "space['loss.r1_gamma'] is an empty list"),
    ({"objective": repr(("fid_digit", "minimize"))},
     "the objective's metric: unknown metric 'fid_digit'; known metrics: fid, kid, fid_digits"),
    ({"objective": repr(("fid_digits", "lowest"))}, "objective must be (metric, 'minimize'"),
    ({"overrides": repr({"metrics": ("kid_digits",)})},
     "the trials would not compute the objective 'fid_digits' (config.metrics is "
     "('kid_digits',)); add it"),
    ({"space": repr({"batch_size": [16, 24.5]})},
     "space['batch_size'] value 24.5: flag --config.batch_size=24.5: invalid literal for int()"),
    ({"space": repr({"loss.r1_gamma": [0.1, -1.0]})},
     "space['loss.r1_gamma'] value -1.0: config.loss.r1_gamma must be >= 0, got -1.0"),
    ({"space": "{'optim.g_lr': FloatDistribution(1e-4, 1e-2, log=True)}"},
     "space['optim.g_lr'] is a range, but a grid needs a list of values"),
    ({"method": "'random'"}, "method 'random' needs trials, the number of trials to run"),
    ({"trials": "4"}, "a grid runs every combination of its lists; drop trials"),
    ({"method": "'annealing'"}, "method 'annealing' is unknown; use one of grid, random, bayes"),
    ({"config": "'experiments/nope.py'"}, "the sweep's config experiments/nope.py does not exist"),
    ({"command": "['no-such-program', '-m', 'stylejax.main']"},
     "the sweep's command 'no-such-program' is not an executable program"),
    ({"budget": "3"}, "has unknown field(s) 'budget'; the fields are config, space"),
    ({"space": repr({"loss.r1_gamma": [0.1]}), "overrides": repr({"loss.r1_gamma": 1.0})},
     "'loss.r1_gamma' is both swept and fixed in overrides"),
])
def test_bad_sweeps_are_refused_with_one_message(tmp_path, fields, message):
    with pytest.raises(SweepError) as error:
        check_sweep(load_sweep(write_sweep(tmp_path, **fields)))
    assert message in str(error.value)


def test_a_sweep_file_that_does_not_load(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def get_sweep():\n    return dict(space=1 / 0)\n")
    with pytest.raises(SweepError, match=r"cannot load the sweep file .*broken.py: "
                                         r"ZeroDivisionError: division by zero"):
        load_sweep(str(path))
    with pytest.raises(SweepError, match="does not exist; sweeps live in experiments/sweeps/"):
        load_sweep(str(tmp_path / "missing.py"))


def test_the_ready_sweep_fits_the_default_experiment():
    sweep = load_sweep(os.path.join(REPO, "experiments", "sweeps", "default_lr_gamma.py"))
    check_sweep(sweep)
    assert (sweep.metric, sweep.direction, sweep.trials) == ("fid_digits", "minimize", 6)
