"""One persistent XLA compilation cache for the whole test session and every subprocess it starts.

Many tests build the same small networks, in this process and in `python -m stylejax.main`
subprocesses: the tiny config's train step compiles in about 30 s on a busy CPU and loads from
the cache in about 1. The cache starts empty in each session and is deleted after it, so every
program is still compiled by XLA at least once per run of the suite.

The README runs the suite on two pytest-xdist workers: they and their subprocesses share the
cache, as the subprocesses of one test already did. jax writes an entry without a lock, so a
process can read one that another is still writing: it then fails to decompress, and jax warns
and compiles the program itself. (jax's lock comes with a size limit whose eviction scan reads
every entry on each write: with thousands of entries, that made the suite slower than one worker.)

The tests' programs are compiled without LLVM's optimisations (--xla_backend_optimization_level=0):
the suite is mostly compiling, and a compile-bound test file took 40% less CPU (test_train_step:
115 s -> 69 s) for slower execution of programs that run a few steps. Tests compare runs within
the suite, or the official outputs within tolerances, never against bits of an optimised build.
"""

import os
import shutil
import tempfile

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

_CACHE_DIR = pytest.StashKey[str]()
_FAST_COMPILE = "--xla_backend_optimization_level=0"
if _FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):  # before any test starts a backend
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # its controller made the cache and deletes it
        path = os.environ["JAX_COMPILATION_CACHE_DIR"]
    else:
        path = tempfile.mkdtemp(prefix="stylejax-tests-xla-cache-")
        config.stash[_CACHE_DIR] = path
    # Subprocesses and xdist workers read the environment; this process has imported jax already.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()


def pytest_unconfigure(config: pytest.Config) -> None:
    path = config.stash.get(_CACHE_DIR, None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
