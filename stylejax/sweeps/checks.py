"""A sweep held against its experiment config before any trial starts.

The command must be a program and every fixed and swept key must exist. Every value (each list
entry, both ends of each range) is parsed by the same absl / ml_collections parser
`stylejax.main` uses, from the same `--config.KEY=VALUE` text, and must pass the config checks of
training; and the objective must be a metric the trials compute. So a typo costs one message,
not a sweep of failed trials.
"""

import os
import shutil
import warnings
from typing import Any

import ml_collections
from absl import flags as absl_flags
from ml_collections import config_flags
from optuna.distributions import BaseDistribution, CategoricalDistribution

from stylejax.errors import ConfigError
from stylejax.metrics.errors import MetricsError
from stylejax.metrics.extractors import parse_metrics
from stylejax.sweeps.definition import Sweep, config_keys
from stylejax.sweeps.errors import SweepError
from stylejax.train.validate import validate_config

_KEYS_HINT = "the keys are listed in stylejax/configs.py (base_config)"


def check_sweep(sweep: Sweep) -> None:
    """Raises SweepError naming the first key, value or metric that would make trials fail."""
    if shutil.which(sweep.command[0]) is None:
        raise SweepError(f"the sweep's command {sweep.command[0]!r} is not an executable program; "
                         "give its path or a program on PATH, e.g. command=['python', '-m', "
                         "'stylejax.main']")
    if not os.path.isfile(sweep.config):
        raise SweepError(f"the sweep's config {sweep.config} does not exist (a path relative to "
                         "the current directory, as for python -m stylejax.main --config)")
    base = _parse(sweep, [], f"the config {sweep.config}")
    try:
        parse_metrics(sweep.metric)
    except MetricsError as e:
        raise SweepError(f"the objective's metric: {e}") from e
    for where, keys in [("overrides", list(sweep.overrides)),
                        ("space", [k for name in sweep.space for k in config_keys(name)])]:
        for key in keys:
            if not _has_key(base, key):
                raise SweepError(f"{where} key {key!r} is not in the config of {sweep.config}; "
                                 f"{_KEYS_HINT}")
    _check_trial_config(sweep, _parse(sweep, sweep.flags({}), "overrides"), "overrides")
    for name, distribution in sweep.space.items():
        for value in _probe_values(distribution):
            where = f"space[{name!r}] value {value!r}"
            _check_trial_config(sweep, _parse(sweep, sweep.flags({name: value}), where), where)


def _has_key(config: ml_collections.ConfigDict, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(config, ml_collections.ConfigDict) or part not in config:
            return False
        config = config[part]
    return True


def _probe_values(distribution: BaseDistribution) -> tuple[Any, ...]:
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices
    return distribution.low, distribution.high


def _parse(sweep: Sweep, flags: list[str], where: str) -> ml_collections.ConfigDict:
    """The config `stylejax.main --config sweep.config FLAGS` would train with."""
    argv = ["stylejax.main", "--config", sweep.config, *flags]
    values = absl_flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True,
                                    sys_argv=argv)
    try:
        with warnings.catch_warnings():  # ml_collections loads the file with load_module()
            warnings.simplefilter("ignore", DeprecationWarning)
            values(argv)
            return values.config
    except absl_flags.Error as e:
        raise SweepError(f"{where}: {e}") from e
    except Exception as e:  # the experiment file is user code: report whatever it raises
        raise SweepError(f"{where}: cannot load the config {sweep.config}: "
                         f"{' '.join(str(e).split())}") from e


def _check_trial_config(sweep: Sweep, config: ml_collections.ConfigDict, where: str) -> None:
    try:
        validate_config(config, num_devices=1)
    except ConfigError as e:
        raise SweepError(f"{where}: {e}") from e
    try:
        computed = parse_metrics(config.metrics)
    except MetricsError as e:
        raise SweepError(f"{where}: config.metrics: {e}") from e
    if sweep.metric not in computed:
        raise SweepError(f"{where}: the trials would not compute the objective {sweep.metric!r} "
                         f"(config.metrics is {tuple(config.metrics)}); add it, e.g. overrides="
                         f"{{'metrics': ({sweep.metric!r},)}}")
