"""Run a hyperparameter sweep: python -m stylejax.sweep --sweep experiments/sweeps/X.py --root DIR.

Each trial is a `stylejax.main` run with the sweep's overrides in its own workdir DIR/trial_NNNN;
--parallel N runs N at once. The study (Optuna) lives in DIR/study.journal, or in the database of
--storage URL; several workers (this command, run again, on this machine or on others sharing
DIR) split the trials between them. Rerunning the command resumes: finished trials are kept,
interrupted ones resume from their checkpoints, failed ones stay failed with their error.
Results: DIR/results.md, results.csv and results.png.
"""

import argparse
import logging
import sys

import optuna

from stylejax.sweeps.checks import check_sweep
from stylejax.sweeps.definition import load_sweep
from stylejax.sweeps.errors import SweepError
from stylejax.sweeps.study import open_study
from stylejax.sweeps.worker import Worker


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stylejax.sweep",
                                     description="Run the trials of a hyperparameter sweep.")
    parser.add_argument("--sweep", required=True, help="the sweep file, experiments/sweeps/X.py")
    parser.add_argument("--root", required=True,
                        help="directory of the trials' workdirs, the study and the results")
    parser.add_argument("--parallel", type=_positive, default=1,
                        help="trials this worker runs at once, each on its share of the CPUs")
    parser.add_argument("--storage", default=None,
                        help="where the study lives: a journal file (default ROOT/study.journal) "
                             "or a database URL such as postgresql://host/db or sqlite:///x.db")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        sweep = load_sweep(args.sweep)
        check_sweep(sweep)
        study = open_study(sweep, args.root, args.storage)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return Worker(sweep, args.root, study, args.parallel).run()


if __name__ == "__main__":
    sys.exit(main())
