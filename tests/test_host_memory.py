"""keep_freed_host_memory (opt-in): a large block freed and allocated again reuses its pages."""

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc")

BLOCK = 64 * 2**20  # above glibc's largest mmap threshold (32 MiB): mapped anew by default

# In a fresh process (the settings are process-wide), on a thread of its own as XLA's execution
# threads are (a thread's own arena maps large blocks whatever M_MMAP_MAX says): allocate, fill
# and free a block twice, and count the page faults of each fill.
_SCRIPT = f"""
import ctypes, json, resource, threading
from stylejax.host_memory import keep_freed_host_memory
applied = keep_freed_host_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
faults = []
def fill_twice():
    for _ in range(2):
        block = libc.malloc({BLOCK})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        ctypes.memset(block, 1, {BLOCK})
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        libc.free(block)
thread = threading.Thread(target=fill_twice)
thread.start()
thread.join()
print(json.dumps({{"applied": applied, "faults": faults}}))
"""


def _run(keep: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "STYLEJAX_KEEP_HOST_MEMORY"}
    if keep is not None:
        env["STYLEJAX_KEEP_HOST_MEMORY"] = keep
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


# Counted in faults of the first fill rather than in pages: with transparent huge pages set to
# 'always', one fault maps 2 MiB.


def test_a_freed_block_is_reused_without_faulting_its_pages_in_again():
    result = _run("1")
    first, second = result["faults"]
    assert result["applied"]
    assert first > 0  # the first fill maps new memory
    assert second <= first // 20  # the second finds the same pages resident


@pytest.mark.parametrize("keep", [None, "0"])
def test_glibcs_defaults_stay_unless_asked_and_then_the_block_faults_again(keep):
    result = _run(keep)
    first, second = result["faults"]
    assert not result["applied"]
    assert second >= first // 2


def test_a_value_other_than_0_or_1_stops_with_a_message_naming_the_fix():
    env = {**os.environ, "STYLEJAX_KEEP_HOST_MEMORY": "yes"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: STYLEJAX_KEEP_HOST_MEMORY='yes': set it to 1 (keep freed host memory) or 0 "
        "(glibc's defaults), or leave it unset"]
