"""One persistent XLA compilation cache for the whole test session and every subprocess it starts.

Many tests build the same small networks, in this process and in `python -m stylejax.main`
subprocesses: the tiny config's train step compiles in about 30 s on a busy CPU and loads from
the cache in about 1. The cache starts empty in each session and is deleted after it, so every
program is still compiled by XLA at least once per run of the suite.

The README runs the suite on two pytest-xdist workers (`-n 2 --dist loadfile`): they and their
subprocesses share the cache, and a size limit turns on jax's file lock around each entry's write
and read, so that no process reads an entry another is still writing.
"""

import os
import shutil
import tempfile

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

_CACHE_DIR = pytest.StashKey[str]()
_SHARED_CACHE = "STYLEJAX_TESTS_XLA_CACHE"
_CACHE_LIMIT_BYTES = 16 << 30  # never reached: a limit is what enables jax's lock


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get(_SHARED_CACHE)
    if not path:  # not an xdist worker: make the cache, and delete it at the end
        path = tempfile.mkdtemp(prefix="stylejax-tests-xla-cache-")
        config.stash[_CACHE_DIR] = path
        os.environ[_SHARED_CACHE] = path
    # Subprocesses read the environment; this process has imported jax already.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(_CACHE_LIMIT_BYTES)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_compilation_cache_max_size", _CACHE_LIMIT_BYTES)
    compilation_cache.reset_cache()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow tests first: an xdist worker takes one file at a time, and a long file
    taken last would run alone at the end while the other worker idles."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: each file keeps its order


def pytest_unconfigure(config: pytest.Config) -> None:
    path = config.stash.get(_CACHE_DIR, None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
