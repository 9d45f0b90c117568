"""Run a hyperparameter sweep: python -m stylejax.sweep --sweep experiments/sweeps/X.py --root DIR.

Each trial is a `stylejax.main` run in DIR/trial_NNNN. The same command run again adds a worker, or resumes
the sweep: finished and failed trials are kept, interrupted ones resume from their checkpoints once their
worker has been silent for --grace_s. Results: DIR/results.csv.
"""

import sys

from absl import flags

from stylejax import cli
from stylejax.errors import UsageError
from stylejax.sweeps.worker import run_sweep

FLAGS = flags.FlagValues()
flags.DEFINE_string("sweep", None, "the sweep file, experiments/sweeps/X.py", flag_values=FLAGS)
flags.DEFINE_string("root", None, "the directory of the trials, study and results", flag_values=FLAGS)
flags.DEFINE_integer("parallel", 1, "trials this worker runs at once", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_string("storage", None, "where the study lives: a journal file (default ROOT/study.journal) or "
                    "a database URL, e.g. postgresql://host/db", flag_values=FLAGS)
flags.DEFINE_integer("grace_s", 60, "seconds a worker may go without a heartbeat before its trials are run "
                     "again", lower_bound=4, flag_values=FLAGS)
flags.mark_flags_as_required(["sweep", "root"], flag_values=FLAGS)


def sweep(positional: list[str]) -> None:
    if positional:
        raise UsageError(f"unexpected arguments {' '.join(positional)!r}: every option is a --flag")
    run_sweep(FLAGS.sweep, FLAGS.root, FLAGS.parallel, FLAGS.storage, FLAGS.grace_s)


def main(argv: list[str] | None = None) -> int:
    """The CLI on `argv` (sys.argv[1:] when None); returns the exit status."""
    return cli.run(sweep, FLAGS, __doc__, ["stylejax.sweep", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
