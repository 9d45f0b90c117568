"""Opt-in: keep freed host memory inside the process, so XLA CPU's buffers are not faulted in anew.

XLA CPU allocates each compiled call's temporary buffers as one block (350 MB for G's main
phase at the benchmark config) and frees it when the call ends. glibc maps a block that large
straight from the kernel and unmaps it on free, so every call faults its pages in again:
about 90,000 page faults, a tenth of the CPU time. Only glibc's main arena can serve such a
block from memory it keeps (per-thread arenas map it whatever M_MMAP_MAX says), so the setting
is one arena that never maps and never trims: +10% train throughput at 32x32, but compiles
take about 1.4x as long (the compiler's threads then share one malloc lock) and resident
memory stays at its peak. Measured in benchmarks/RESULTS.md; hence opt-in, for long CPU runs:
STYLEJAX_KEEP_HOST_MEMORY=1.
"""

import ctypes
import ctypes.util
import os

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: the largest free top that is kept, in bytes


def keep_freed_host_memory() -> bool:
    """Where STYLEJAX_KEEP_HOST_MEMORY=1 asks for it, tunes glibc's malloc to reuse freed memory;
    True where it applied, False where not asked or the C library is not glibc. Any value but
    0 or 1 stops the process with a message: a misspelt switch would otherwise do nothing.

    Call it before the first JAX computation: the arena limit holds only for threads that
    have not allocated yet, and XLA's threads start with the first backend.
    """
    value = os.environ.get("STYLEJAX_KEEP_HOST_MEMORY", "0")
    if value not in ("0", "1"):
        raise SystemExit(f"error: STYLEJAX_KEEP_HOST_MEMORY={value!r}: set it to 1 (keep freed "
                         "host memory) or 0 (glibc's defaults), or leave it unset")
    if value == "0":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):  # no C library to load (Windows), or not glibc
        return False
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM))
    return all(mallopt(option, value) == 1 for option, value in settings)
