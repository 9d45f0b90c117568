"""Sweep files: what a trial runs with, and bad files refused in one message before any trial starts (in
process here; tests/test_sweep_run.py checks that the command shows it as one line, exit status 2)."""

import json
import os
import subprocess
import sys

import pytest
from optuna.distributions import FloatDistribution

from stylejax.sweeps.definition import SweepError, load_sweep
from tests.scripts.sweep_helpers import DEFAULT, REPO, write_sweep


def test_a_grid_has_every_combination_and_its_flags_mean_to_stylejax_main_what_the_file_says(tmp_path):
    """The flags of a trial, parsed by stylejax.main's own parser, give back the overrides and the trial's
    values (floats, ints, tuples, strings, booleans; 'a,b' setting both keys)."""
    overrides = {"num_train_steps": 7, "metrics": ["fid_digits", "kid_digits"], "xflip": True,
                 "model.modconv": "fused", "optim.beta2": 0.999}
    space = {"optim.g_lr,optim.d_lr": [1.5e-05, 0.002, 0.004], "loss.r1_gamma": [0.1, 1.0]}
    sweep = load_sweep(write_sweep(tmp_path, "lr_gamma", overrides=repr(overrides), space=repr(space)))
    assert (sweep.name, sweep.method, sweep.trials) == ("lr_gamma", "grid", 6)
    script = ("import sys; from stylejax.main import FLAGS, parse_flags; parse_flags(sys.argv); "
              "print(FLAGS.config.to_json())")
    flags = sweep.flags({"optim.g_lr,optim.d_lr": 1.5e-05, "loss.r1_gamma": 0.1})
    result = subprocess.run([sys.executable, "-c", script, "--config", DEFAULT, "--workdir", "w", *flags],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    config = json.loads(result.stdout)
    assert config["num_train_steps"] == 7 and config["metrics"] == ["fid_digits", "kid_digits"]
    assert config["xflip"] is True and config["model"]["modconv"] == "fused"
    assert config["optim"]["beta2"] == 0.999
    assert config["optim"]["g_lr"] == config["optim"]["d_lr"] == 1.5e-05
    assert config["loss"]["r1_gamma"] == 0.1


def test_random_and_bayes_search_take_ranges_and_a_budget(tmp_path):
    space = {"optim.g_lr": FloatDistribution(1e-4, 1e-2, log=True), "loss.r1_gamma": [0.1, 1.0]}
    sweep = load_sweep(write_sweep(tmp_path, method="'bayes'", trials="5", seed="7", space=repr(space)))
    assert (sweep.method, sweep.trials, sweep.seed) == ("bayes", 5, 7)
    assert sweep.space["optim.g_lr"] == FloatDistribution(1e-4, 1e-2, log=True)


@pytest.mark.parametrize("fields,message", [
    ({"space": repr({"optim.glr": [0.001]})}, "space key 'optim.glr' is not in the config of"),
    ({"space": repr({"optim.g_lr,optim.dlr": [0.001]})}, "space key 'optim.dlr' is not in the config of"),
    ({"overrides": repr({"num_steps": 10})}, "overrides key 'num_steps' is not in the config of"),
    ({"space": "{}"}, "the space is empty"),
    ({"space": repr({"loss.r1_gamma": []})}, "space['loss.r1_gamma'] must be a non-empty list"),
    ({"objective": repr(("fid_digit", "minimize"))}, "unknown metric 'fid_digit'"),
    ({"objective": repr(("fid_digits", "lowest"))}, "objective must be (metric, 'minimize' or 'maximize')"),
    ({"overrides": repr({"metrics": ("kid_digits",)})},
     "the trials would not compute the objective 'fid_digits' (config.metrics is ('kid_digits',))"),
    ({"space": repr({"batch_size": [16, 24.5]})},
     "space['batch_size'] value 24.5: flag --config.batch_size=24.5: invalid literal for int()"),
    ({"space": repr({"loss.r1_gamma": [0.1, -1.0]})},
     "space['loss.r1_gamma'] value -1.0: config.loss.r1_gamma must be >= 0, got -1.0"),
    ({"space": "{'optim.g_lr': FloatDistribution(1e-4, 1e-2, log=True)}"},
     "space['optim.g_lr'] is a range, but a grid needs a list of values"),
    ({"method": "'random'"}, "method 'random' needs trials, the number of trials to run"),
    ({"trials": "4"}, "a grid runs every combination of its lists; drop trials"),
    ({"method": "'annealing'"}, "method 'annealing' is unknown"),
    ({"config": "'experiments/nope.py'"}, "the sweep's config experiments/nope.py does not exist"),
    ({"command": "['no-such-program', '-m', 'stylejax.main']"}, "command 'no-such-program' is not a program"),
    ({"budget": "3"}, "unexpected keyword argument 'budget'; the fields are config, space, objective"),
    ({"space": repr({"loss.r1_gamma": [0.1]}), "overrides": repr({"loss.r1_gamma": 1.0})},
     "loss.r1_gamma both swept and fixed in overrides"),
])
def test_bad_sweeps_are_refused_with_one_message(tmp_path, fields, message):
    with pytest.raises(SweepError) as error:
        load_sweep(write_sweep(tmp_path, **fields))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_sweep_file_that_is_not_there_or_whose_own_code_fails(tmp_path):
    with pytest.raises(SweepError, match="does not exist; sweeps live in experiments/sweeps"):
        load_sweep(str(tmp_path / "missing.py"))
    path = tmp_path / "broken.py"
    path.write_text("def get_sweep():\n    return dict(space=1 / 0)\n")
    with pytest.raises(ZeroDivisionError):  # the user's own code: its traceback points at the line
        load_sweep(str(path))


def test_the_ready_sweep_fits_the_default_experiment():
    sweep = load_sweep(os.path.join(REPO, "experiments", "sweeps", "default_lr_gamma.py"))
    assert (sweep.objective, sweep.trials) == (("fid_digits", "minimize"), 6)
