"""File locks (flock) that coordinate the workers of a sweep sharing one --root.

ROOT/sweep.lock is held for a moment while a worker creates the study, claims a trial or requeues
the trials of dead workers, so those steps never interleave. ROOT/trial_NNNN/sweep.lock is held
for as long as an attempt of that trial runs, by its worker and by its training process, which
inherits the lock: the kernel frees it when both have ended, so a RUNNING trial whose lock can be
taken has nobody left running it, whatever killed them. The file names the Optuna trial that
holds it, so that an attempt claimed under another root (another machine's disk) is never
mistaken for a dead one.
"""

import contextlib
import fcntl
import os
from collections.abc import Iterator

LOCK_FILE = "sweep.lock"


def try_lock(path: str) -> int | None:
    """The descriptor holding `path`'s lock, or None if another holder has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lock(path: str) -> int:
    """The descriptor holding `path`'s lock, waiting for any other holder to let go."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@contextlib.contextmanager
def held(path: str) -> Iterator[None]:
    """`path`'s lock for the duration of a with-block."""
    fd = lock(path)
    try:
        yield
    finally:
        os.close(fd)


def set_owner(fd: int, number: int) -> None:
    """Records in a held lock's file the Optuna trial number of the attempt holding it."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(number).encode(), 0)


def owner(path: str) -> int | None:
    """The trial number recorded in a lock file; None if it has none."""
    try:
        with open(path) as f:
            return int(f.read())
    except (FileNotFoundError, ValueError):
        return None
