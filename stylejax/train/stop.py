"""SIGTERM and Ctrl-C: stop after the current step (and save); a second signal aborts at once."""

import signal
import sys
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Turns the first SIGINT / SIGTERM into a request the training loop polls between steps.

    After the first signal both go back to the system default, so a second one ends the process
    at once, even while it is inside a long compilation or a blocking save. Handlers are
    installed only in the main thread (Python allows no other) and restored on exit.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum
        for s in SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        print(f"{signal.Signals(signum).name}: finishing this step and saving a checkpoint; "
              "press Ctrl-C again to abort without saving", file=sys.stderr, flush=True)

    def requested(self) -> int | None:
        """The signal that asked to stop, agreed by all processes: any one's signal stops them all
        at the same step (one small all-gather per call when there are several processes)."""
        if jax.process_count() == 1:
            return self.signum
        signums = multihost_utils.process_allgather(np.int32(self.signum or 0))
        return int(np.max(signums)) or None
