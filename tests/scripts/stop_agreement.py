"""One of two processes receives SIGTERM: both must agree to stop. Prints what each decided."""

import argparse
import os
import signal

from stylejax.train.stop import StopSignals
from tests.scripts.processes import add_process_flags, join_processes


def main():
    parser = argparse.ArgumentParser()
    add_process_flags(parser)
    args = parser.parse_args()
    join_processes(args)
    with StopSignals() as stop:
        before = stop.requested()
        if args.process_id == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # handled: the process goes on
        after = stop.requested()
    print(f"process {args.process_id}: before={before} after={after}")


if __name__ == "__main__":
    main()
