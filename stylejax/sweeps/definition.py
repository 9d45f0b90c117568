"""Sweep files: `experiments/sweeps/NAME.py` defines `get_sweep()`, returning a dict of

    config     the experiment file every trial starts from, e.g. 'experiments/default.py'
               (relative to the current directory, as `stylejax.main --config` takes it)
    space      {config key: values}. Values are a list (the grid, or the choices of a random or
               bayes search) or an Optuna distribution, e.g. FloatDistribution(1e-4, 1e-2,
               log=True) or IntDistribution(16, 64, step=16). A key 'optim.g_lr,optim.d_lr'
               gives several config keys one value.
    objective  (metric, 'minimize' | 'maximize'): a metric of config.metrics, read from each
               trial's metrics.jsonl at its last evaluated step
    method     'grid' (every combination of the lists; the default), 'random' or 'bayes'
               (Optuna's TPE sampler)
    trials     the number of trials of a random or bayes search (a grid runs every combination)
    overrides  {config key: value} for every trial, e.g. a shorter num_train_steps
    seed       seeds the sampler, so that the same sweep proposes the same trials (default 0)
    command    the program a trial runs (default: this Python's `-m stylejax.main`), e.g.
               ('srun', 'python', '-m', 'stylejax.main'); --config, --workdir and the
               `--config.KEY=VALUE` overrides are appended

Only the shape of the file is checked here; `checks` holds it against the experiment config.
"""

import dataclasses
import importlib.util
import itertools
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from stylejax.sweeps.errors import SweepError

METHODS = ("grid", "random", "bayes")
DIRECTIONS = ("minimize", "maximize")
FIELDS = ("config", "space", "objective", "method", "trials", "overrides", "seed", "command")
_SCALARS = (bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A checked sweep file. `space` maps each swept name to an Optuna distribution (lists become
    CategoricalDistribution); `name` (the file's stem) names the Optuna study."""

    name: str
    config: str
    space: dict[str, BaseDistribution]
    metric: str
    direction: str
    method: str
    trials: int
    overrides: dict[str, Any]
    seed: int
    command: tuple[str, ...]

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the space's lists, the first key varying slowest."""
        names = list(self.space)
        choices = [self.space[n].choices for n in names]
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*choices)]

    def flags(self, params: Mapping[str, Any]) -> list[str]:
        """`--config.KEY=VALUE` for the fixed overrides and a trial's parameters."""
        values = dict(self.overrides)
        for name, value in params.items():
            values.update(dict.fromkeys(config_keys(name), value))
        return [f"--config.{key}={flag_text(value)}" for key, value in values.items()]

    def command_line(self, params: Mapping[str, Any], workdir: str) -> list[str]:
        return [*self.command, "--config", self.config, "--workdir", workdir, *self.flags(params)]

    def fingerprint(self) -> str:
        """What makes two runs of a sweep the same study (the command may change between runs)."""
        return json.dumps({
            "config": self.config, "metric": self.metric, "direction": self.direction,
            "method": self.method, "trials": self.trials, "seed": self.seed,
            "space": {n: json.loads(distribution_to_json(d)) for n, d in self.space.items()},
            "overrides": {k: flag_text(v) for k, v in self.overrides.items()}}, sort_keys=True)


def config_keys(name: str) -> list[str]:
    """The config keys a swept name sets: 'optim.g_lr,optim.d_lr' sets both."""
    return [key.strip() for key in name.split(",")]


def flag_text(value: Any) -> str:
    """A value as `stylejax.main` parses it back from --config.KEY=VALUE."""
    if isinstance(value, list | tuple):
        return repr(tuple(value))
    return repr(value) if isinstance(value, float) else str(value)


def load_sweep(path: str) -> Sweep:
    """Runs the sweep file's get_sweep() and checks the shape of what it returns."""
    where = f"the sweep file {path}"
    fields = _run_file(path)
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise SweepError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; the "
                         f"fields are {', '.join(FIELDS)}")
    missing = [f for f in ("config", "space", "objective") if f not in fields]
    if missing:
        raise SweepError(f"{where} lacks {', '.join(map(repr, missing))}; e.g. "
                         "config='experiments/default.py', space={'loss.r1_gamma': [0.01, 0.1]}, "
                         "objective=('fid_digits', 'minimize')")
    method = fields.get("method", "grid")
    if method not in METHODS:
        raise SweepError(f"{where}: method {method!r} is unknown; use one of {', '.join(METHODS)}")
    space = _space(fields["space"], method, where)
    metric, direction = _objective(fields["objective"], where)
    overrides = fields.get("overrides", {})
    if not isinstance(overrides, Mapping) or not all(isinstance(k, str) for k in overrides):
        raise SweepError(f"{where}: overrides must be a dict of config keys to values")
    swept = {key for name in space for key in config_keys(name)}
    both = sorted(swept & set(overrides))
    if both:
        raise SweepError(f"{where}: {both[0]!r} is both swept and fixed in overrides; drop one")
    command = fields.get("command", (sys.executable, "-m", "stylejax.main"))
    if (isinstance(command, str) or not isinstance(command, Sequence) or not command
            or not all(isinstance(c, str) for c in command)):
        raise SweepError(f"{where}: command must be a list of strings, e.g. "
                         "['python', '-m', 'stylejax.main']")
    seed = fields.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SweepError(f"{where}: seed must be an integer >= 0, got {seed!r}")
    return Sweep(name=os.path.splitext(os.path.basename(path))[0], config=str(fields["config"]),
                 space=space, metric=metric, direction=direction, method=method,
                 trials=_trials(fields.get("trials"), method, space, where),
                 overrides=dict(overrides), seed=seed, command=tuple(command))


def _run_file(path: str) -> Mapping[str, Any]:
    if not os.path.isfile(path):
        raise SweepError(f"the sweep file {path} does not exist; sweeps live in experiments/sweeps/")
    spec = importlib.util.spec_from_file_location(f"_stylejax_sweep_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        fields = module.get_sweep()
    except AttributeError as e:
        if not hasattr(module, "get_sweep"):
            raise SweepError(f"the sweep file {path} has no get_sweep() function") from e
        raise SweepError(f"cannot load the sweep file {path}: {e}") from e
    except Exception as e:  # the file is user code: any error it raises is reported in one line
        raise SweepError(f"cannot load the sweep file {path}: {type(e).__name__}: {e}") from e
    if not isinstance(fields, Mapping):
        raise SweepError(f"get_sweep() of {path} must return a dict, got {type(fields).__name__}")
    return fields


def _space(space: Any, method: str, where: str) -> dict[str, BaseDistribution]:
    if not isinstance(space, Mapping) or not space:
        raise SweepError(f"{where}: the space is empty; give at least one config key and its "
                         "values, e.g. space={'loss.r1_gamma': [0.01, 0.1, 1.0]}")
    result = {}
    for name, values in space.items():
        if not isinstance(name, str) or not all(config_keys(name)):
            raise SweepError(f"{where}: space key {name!r} is not a config key such as "
                             "'optim.g_lr'")
        if isinstance(values, list | tuple):
            if not values:
                raise SweepError(f"{where}: space[{name!r}] is an empty list; give it values")
            bad = [v for v in values if not isinstance(v, _SCALARS)]
            if bad:
                raise SweepError(f"{where}: space[{name!r}] value {bad[0]!r} is not a number, "
                                 "bool or string")
            result[name] = CategoricalDistribution(tuple(values))
        elif isinstance(values, FloatDistribution | IntDistribution | CategoricalDistribution):
            if method == "grid":
                raise SweepError(f"{where}: space[{name!r}] is a range, but a grid needs a list "
                                 "of values; give a list or use method='random' or 'bayes'")
            result[name] = values
        else:
            raise SweepError(f"{where}: space[{name!r}] must be a list of values or an Optuna "
                             "distribution such as FloatDistribution(1e-4, 1e-2, log=True)")
    return result


def _objective(objective: Any, where: str) -> tuple[str, str]:
    if (isinstance(objective, str) or not isinstance(objective, Sequence) or len(objective) != 2
            or not isinstance(objective[0], str) or objective[1] not in DIRECTIONS):
        raise SweepError(f"{where}: objective must be (metric, 'minimize' or 'maximize'), e.g. "
                         f"('fid_digits', 'minimize'); got {objective!r}")
    return objective[0], objective[1]


def _trials(trials: Any, method: str, space: dict[str, BaseDistribution], where: str) -> int:
    if method == "grid":
        if trials is not None:
            raise SweepError(f"{where}: a grid runs every combination of its lists; drop trials, "
                             "or use method='random' or 'bayes' for a budget")
        return math.prod(len(d.choices) for d in space.values())
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise SweepError(f"{where}: method {method!r} needs trials, the number of trials to run "
                         f"(an integer >= 1), got {trials!r}")
    return trials
