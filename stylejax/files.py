"""Writing a file atomically."""

import os
from collections.abc import Callable
from typing import BinaryIO


def write_atomically(path: str, write: Callable[[BinaryIO], object]) -> None:
    """Calls `write` on a temporary file next to `path`, then renames it onto `path`, so that a
    reader or a crash never sees a half-written file; on failure the temporary file is removed."""
    tmp = f"{path}.tmp{os.getpid()}"  # same directory: os.replace is atomic within a filesystem
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
