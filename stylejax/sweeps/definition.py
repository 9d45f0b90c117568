"""Sweep files: `experiments/sweeps/NAME.py` defines get_sweep() returning a dict of config, space and
objective, and optionally method, trials, overrides, seed and command (README, "Sweeps")."""

import dataclasses
import importlib.util
import math
import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

import ml_collections
from absl import flags
from ml_collections import config_flags
from optuna.distributions import BaseDistribution, CategoricalDistribution

from stylejax.errors import StylejaxError
from stylejax.metrics.extractors import parse_metrics
from stylejax.train.validate import validate_config

METHODS = ("grid", "random", "bayes")


class SweepError(StylejaxError):
    """A sweep file, its config or its study that cannot work, refused before any trial starts."""


@dataclasses.dataclass
class Sweep:
    """A sweep file's fields, lists in `space` made categorical; `name` (the file's stem) names the study."""

    name: str
    config: str
    space: dict[str, BaseDistribution]
    objective: tuple[str, str]  # (metric, 'minimize' | 'maximize')
    method: str = "grid"
    trials: int | None = None  # a grid's is the number of its combinations
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    command: tuple[str, ...] = (sys.executable, "-m", "stylejax.main")

    def flags(self, params: Mapping[str, Any]) -> list[str]:
        """`--config.KEY=VALUE` for the overrides and a trial's values (a name 'a,b' sets a and b)."""
        values = dict(self.overrides)
        for name, value in params.items():
            values.update(dict.fromkeys(name.split(","), value))
        return [f"--config.{key}={tuple(v) if isinstance(v, list) else v}" for key, v in values.items()]


def _require(ok: object, message: str) -> None:
    if not ok:
        raise SweepError(message)


def load_sweep(path: str) -> Sweep:
    """Runs the file's get_sweep() (errors of its own code keep their traceback) and checks its sweep."""
    _require(os.path.isfile(path), f"the sweep file {path} does not exist; sweeps live in experiments/sweeps")
    spec = importlib.util.spec_from_file_location(f"_stylejax_sweep_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    where = f"the sweep file {path}"
    _require(hasattr(module, "get_sweep"), f"{where} has no get_sweep() function")
    fields = dict(module.get_sweep())
    try:
        sweep = Sweep(os.path.splitext(os.path.basename(path))[0], **fields)
    except TypeError as e:  # a field missing or unknown
        names = ", ".join(f.name for f in dataclasses.fields(Sweep)[1:])
        raise SweepError(f"{where}: {str(e).replace('Sweep.__init__() ', '')}; the fields are {names}") from e
    _require(sweep.method in METHODS, f"{where}: method {sweep.method!r} is unknown; use one of {METHODS}")
    pair = isinstance(sweep.objective, list | tuple) and len(sweep.objective) == 2
    _require(pair and sweep.objective[1] in ("minimize", "maximize"), f"{where}: objective must be (metric, "
             "'minimize' or 'maximize')")
    _require(isinstance(sweep.space, Mapping) and sweep.space, f"{where}: the space is empty; give config "
             "keys and values, e.g. space={'loss.r1_gamma': [0.01, 0.1, 1.0]}")
    sweep.space = {name: CategoricalDistribution(v) if isinstance(v, list | tuple) and v else v
                   for name, v in sweep.space.items()}
    for name, values in sweep.space.items():
        _require(isinstance(values, BaseDistribution), f"{where}: space[{name!r}] must be a non-empty list "
                 "of values or an Optuna distribution, e.g. FloatDistribution(1e-4, 1e-2, log=True)")
        _require(sweep.method != "grid" or isinstance(values, CategoricalDistribution), f"{where}: "
                 f"space[{name!r}] is a range, but a grid needs a list of values (or method='random')")
    both = set(sweep.overrides) & {key for name in sweep.space for key in name.split(",")}
    _require(not both, f"{where}: {', '.join(sorted(both))} both swept and fixed in overrides; drop one")
    if sweep.method == "grid":
        _require(sweep.trials is None, f"{where}: a grid runs every combination of its lists; drop trials")
        sweep.trials = math.prod(len(d.choices) for d in sweep.space.values())
    _require(type(sweep.trials) is int and sweep.trials >= 1, f"{where}: method {sweep.method!r} needs "
             f"trials, the number of trials to run (an integer >= 1), got {sweep.trials!r}")
    _check_against_config(sweep)
    return sweep


def _check_against_config(sweep: Sweep) -> None:
    """Every key exists, every value (list entries, ends of ranges) parses as `stylejax.main` parses it and
    passes training's config checks, the trials compute the objective: a typo costs a line, not a sweep."""
    _require(shutil.which(sweep.command[0]), f"the sweep's command {sweep.command[0]!r} is not a program "
             "(give its path, or a program on PATH)")
    _require(os.path.isfile(sweep.config), f"the sweep's config {sweep.config} does not exist (a path "
             "relative to the current directory, as for stylejax.main --config)")
    base = _parse(sweep.config, [])
    for where, names in [("overrides", sweep.overrides), ("space", sweep.space)]:
        missing = [key for name in names for key in name.split(",") if not _has_key(base, key)]
        _require(not missing, f"{where} key {', '.join(map(repr, missing))} is not in the config of "
                 f"{sweep.config}; the keys are in stylejax/configs.py")
    probes = [("overrides", {})] + [
        (f"space[{name!r}] value {value!r}", {name: value}) for name, d in sweep.space.items()
        for value in (d.choices if isinstance(d, CategoricalDistribution) else (d.low, d.high))]
    for where, params in probes:
        try:
            config = _parse(sweep.config, sweep.flags(params))
            validate_config(config, num_devices=1)
            computed = parse_metrics(config.metrics)
            parse_metrics(sweep.objective[0])
        except (flags.Error, StylejaxError) as e:
            raise SweepError(f"{where}: {e}") from e
        _require(sweep.objective[0] in computed, f"{where}: the trials would not compute the objective "
                 f"{sweep.objective[0]!r} (config.metrics is {tuple(config.metrics)}); add it to overrides")


def _parse(config_file: str, overrides: list[str]) -> ml_collections.ConfigDict:
    """The config `stylejax.main --config CONFIG_FILE OVERRIDES` trains with."""
    argv = ["stylejax.main", "--config", config_file, *overrides]
    parsed = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=parsed, lock_config=True, sys_argv=argv)
    parsed(argv)
    return parsed.config


def _has_key(config: ml_collections.ConfigDict, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(config, ml_collections.ConfigDict) or part not in config:
            return False
        config = config[part]
    return True
