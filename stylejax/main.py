"""Launch an experiment: python -m stylejax.main --config experiments/X.py --workdir DIR.

Override any config value with --config.KEY=VALUE (e.g. --config.batch_size=64).
"""

import json
import logging
import os
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

from stylejax.configs import apply_auto_rule
from stylejax.errors import TrainingDivergedError
from stylejax.train.loop import train

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


def write_config(config, workdir: str) -> None:
    """The resolved config (after overrides and the auto rule), for the record and for sampling."""
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            json.dump(json.loads(config.to_json_best_effort()), f, indent=2, sort_keys=True)


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.coordinator_address or os.environ.get("SLURM_NTASKS", "1") != "1":
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    logging.getLogger().setLevel(logging.INFO)
    config = FLAGS.config
    try:
        if config.auto:
            with config.unlocked():
                apply_auto_rule(config, config.resolution, jax.device_count())
        os.makedirs(FLAGS.workdir, exist_ok=True)
        write_config(config, FLAGS.workdir)
        train(config, FLAGS.workdir)
    except (ValueError, TrainingDivergedError) as e:
        logging.debug("stopped", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def run() -> None:
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
