"""Keep freed host memory inside the process, so XLA CPU's buffers are not faulted in anew.

XLA CPU allocates each compiled call's temporary buffers as one block (350 MB for G's main
phase at the benchmark config) and frees it when the call ends. glibc maps a block that large
straight from the kernel and unmaps it on free, so every call faulted its pages in again:
about 90,000 page faults, a tenth of the CPU time. glibc's main arena can be told to keep such
blocks (no mmap, no trim); a per-thread arena maps them whatever it is told. So one-device CPU
programs run on the calling thread (no asynchronous dispatch), whose blocks come from the main
arena, and the compiler's threads keep their own arenas. The cost is that resident memory
stays at its peak (numbers in benchmarks/RESULTS.md); STYLEJAX_KEEP_HOST_MEMORY=0 turns it off.
"""

import ctypes
import ctypes.util
import os

import jax

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: the largest free top that is kept, in bytes


def keep_freed_host_memory() -> bool:
    """Tunes glibc's malloc to keep freed memory and runs CPU programs on the calling thread;
    True where it applied, False where STYLEJAX_KEEP_HOST_MEMORY=0 or the C library is not
    glibc. Any other value stops the process with a message: a misspelt switch would otherwise
    pass unnoticed.

    Call it before the first JAX computation: the dispatch mode is fixed when the CPU backend
    starts.
    """
    value = os.environ.get("STYLEJAX_KEEP_HOST_MEMORY", "1")
    if value not in ("0", "1"):
        raise SystemExit(f"error: STYLEJAX_KEEP_HOST_MEMORY={value!r}: set it to 1 (keep freed "
                         "host memory, the default) or 0 (glibc's defaults)")
    if value == "0":
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
