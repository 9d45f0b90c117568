"""Keep freed host memory inside a CPU-only process, so XLA CPU's buffers are not faulted in anew.

XLA CPU allocates each compiled call's temporary buffers as one block (350 MB for G's main
phase at the benchmark config) and frees it when the call ends. glibc maps a block that large
straight from the kernel and unmaps it on free, so every call faulted its pages in again:
about 90,000 page faults, a tenth of the CPU time. glibc's main arena can be told to keep such
blocks (no mmap, no trim); a per-thread arena maps them whatever it is told. So one-device CPU
programs run on the calling thread (no asynchronous dispatch), whose blocks come from the main
arena, and the compiler's threads keep their own arenas. The cost is that resident memory
stays at its peak (numbers in benchmarks/RESULTS.md, "Page faults").

A process tweak, not part of the model: on by default only where JAX's default backend will be
the CPU; STYLEJAX_KEEP_HOST_MEMORY=1 or 0 turns it on or off whatever the backend.
"""

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import os
import pkgutil

import jax

SWITCH = "STYLEJAX_KEEP_HOST_MEMORY"
# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: the largest free top that is kept, in bytes


def keep_freed_host_memory() -> bool:
    """Tunes glibc's malloc to keep freed memory and runs CPU programs on the calling thread,
    where it is wanted (`wanted_by_default`, or the switch); True where it applied. A switch
    other than 0 or 1 stops the process with a message: a misspelling would pass unnoticed.

    Call it before the first JAX computation: the dispatch mode is fixed when the CPU backend
    starts.
    """
    value = os.environ.get(SWITCH)
    if value not in (None, "0", "1"):
        raise SystemExit(f"error: {SWITCH}={value!r}: set it to 1 (keep freed host memory) or 0 "
                         "(glibc's defaults), or leave it unset (kept where the CPU is JAX's "
                         "default backend)")
    if not (wanted_by_default() if value is None else value == "1"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):  # no C library to load (Windows), or not glibc
        return False
    if not all(mallopt(option, setting) == 1
               for option, setting in ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM))):
        return False
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True


def wanted_by_default() -> bool:
    """Whether JAX's default backend will be the CPU, decided without starting any backend (which
    must wait for jax.distributed.initialize): the first of JAX_PLATFORMS where it is set, else
    whether no accelerator plugin (a jax_plugins module, or libtpu) is installed. A plugin whose
    hardware is absent leaves JAX on the CPU, and this off: conservative, the switch turns it on."""
    platforms = jax.config.jax_platforms
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    return not _accelerator_plugin_installed()


def _accelerator_plugin_installed() -> bool:
    """The plugins JAX itself looks for at start-up (jax._src.xla_bridge): modules of the
    jax_plugins namespace package or entry points of that group (CUDA, ROCm), and libtpu."""
    if importlib.util.find_spec("libtpu") is not None:
        return True
    if importlib.metadata.entry_points(group="jax_plugins"):
        return True
    namespace = importlib.util.find_spec("jax_plugins")
    return namespace is not None and any(pkgutil.iter_modules(namespace.submodule_search_locations))
