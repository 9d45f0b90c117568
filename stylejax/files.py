"""Writing a file atomically."""

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """A temporary path next to `path` (ending in `suffix`, for writers that pick the format by
    it), renamed onto `path` when the block ends, so that a reader or a crash never sees a
    half-written file; on failure the temporary file is removed."""
    tmp = f"{path}.tmp{os.getpid()}{suffix}"  # same directory: os.replace is atomic within a filesystem
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise


def write_atomically(path: str, write: Callable[[BinaryIO], object]) -> None:
    """Calls `write` on a temporary file next to `path`, then renames it onto `path` (atomic_path)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
