"""Launch an experiment: python -m stylejax.main --config experiments/X.py --workdir DIR.

Override any config value with --config.KEY=VALUE (e.g. --config.batch_size=64).
"""

import logging
import os
import sys

import jax
import ml_collections
from absl import app, flags
from ml_collections import config_flags

from stylejax import cli
from stylejax.configs import apply_auto_rule
from stylejax.errors import ConfigError
from stylejax.host_memory import keep_freed_host_memory
from stylejax.official import load_network_file
from stylejax.train.validate import validate_config

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.DEFINE_string("coordinator_address", None,
                    "host:port of process 0 for multi-process runs; omit on SLURM / TPU pods, "
                    "where jax.distributed finds it by itself.")
flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs only).")
flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs only).")
config_flags.DEFINE_config_file("config", None, "Experiment config file (experiments/*.py).",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def check_workdir(path: str) -> None:
    """The workdir exists as a writable directory, or can be made one."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"--workdir {path} is a file; give a directory (new or a run's)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create --workdir {path}: {e.strerror}; choose a writable "
                          "location") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--workdir {path} is not writable; fix its permissions or choose another")


def resolve_config(config: ml_collections.ConfigDict) -> None:
    """The config as the run uses it: the auto rule applied, a fine-tuned file's architecture
    adopted, every value checked (a bad one fails in a second, not after imports)."""
    if config.auto:
        with config.unlocked():
            apply_auto_rule(config, config.resolution, jax.device_count())
    if config.init_from:  # the fine-tuned file's architecture, before anything checks it
        network = load_network_file(config.init_from)
        network.check_trainable()
        network.architecture.apply_to(config, explicit=config_flags.get_override_values(FLAGS["config"]),
                                      source=config.init_from)
    validate_config(config, jax.device_count())


def train_from_flags(config: ml_collections.ConfigDict, workdir: str) -> None:
    resolve_config(config)
    from stylejax.train.loop import train  # heavy (TensorFlow, clu): after the config is known good

    check_workdir(workdir)
    train(config, workdir)


def main(argv) -> int:
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])!r}: every option is a --flag "
              "(see --helpshort)", file=sys.stderr)
        return 2
    if FLAGS.coordinator_address or os.environ.get("SLURM_NTASKS", "1") != "1":
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    logging.getLogger().setLevel(logging.INFO)
    cli.quiet_orbax()
    return cli.call(train_from_flags, FLAGS.config, FLAGS.workdir)


def _config_path(argv: list[str]) -> str | None:
    """The --config file named on the command line (without an override suffix)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1].split(":")[0]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1].split(":")[0]
    return None


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, with bad flags, config files and overrides reported in one line, exit 2."""
    keys_hint = "the keys and their defaults are in stylejax/configs.py"
    try:
        remaining = FLAGS(argv)
        FLAGS.config.get("seed")  # the config file loads lazily: fail here, not mid-run
        return remaining
    except flags.UnrecognizedFlagError as e:
        name = e.flagname
        message = (f"unknown config key {name[len('config.'):]!r} (--{name}); {keys_hint}"
                   if name.startswith("config.") else f"unknown flag --{name}; see --helpshort")
    except SyntaxError as e:  # raised by the config file itself
        message = (f"the --config file {e.filename} has a syntax error at line {e.lineno} "
                   f"({e.msg}); fix it")
    except (AttributeError, KeyError) as e:  # an override of a key the config does not have
        if "get_config" in str(e):
            message = (f"the --config file {_config_path(argv)} defines no get_config(); it must "
                       "return the config, as experiments/default.py does")
        else:
            key = str(e).strip("\"'")
            message = f"unknown config key {key!r} in a --config override; {keys_hint}"
    except flags.Error as e:
        message = str(e)
    except OSError as e:
        path = _config_path(argv)
        message = (f"the --config file {path} does not exist" if path and not os.path.exists(path)
                   else f"cannot load the --config file: {' '.join(str(e).split())}")
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def run() -> None:
    keep_freed_host_memory()  # before jax.distributed and the CPU backend start
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
