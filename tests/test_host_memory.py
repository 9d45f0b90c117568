"""keep_freed_host_memory: a compiled CPU program's large temporary buffer is reused, not
faulted in again on every call."""

import json
import os
import platform
import statistics
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc")

TEMPORARY = 8192 * 2048 * 4  # bytes of the program's intermediate: 64 MiB, over glibc's 32 MiB
# largest mmap threshold, so by default it is mapped anew and unmapped on every call

# In a fresh process (the settings are process-wide): a program whose intermediate (tanh(a @ b),
# not fusible into the second product) is a temporary buffer of XLA's; the page faults of each
# of the last twelve of sixteen calls. The heap still grows now and then after the first call
# (the freed block is not always free and whole when the next call asks for it), more often on
# a loaded machine: a run in CI faulted two calls of three in a row. So the tests judge the
# typical call, the median, not every call.
_SCRIPT = """
import json, resource
from stylejax.host_memory import keep_freed_host_memory
applied = keep_freed_host_memory()
import jax, jax.numpy as jnp
program = jax.jit(lambda a, b, c: jnp.tanh(a @ b) @ c)
a, b, c = jnp.ones((8192, 64)), jnp.ones((64, 2048)) / 64, jnp.ones((2048, 8))
faults = []
for _ in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(program(a, b, c))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults": faults[-12:]}))
"""


def _run(keep: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "STYLEJAX_KEEP_HOST_MEMORY"}
    if keep is not None:
        env["STYLEJAX_KEEP_HOST_MEMORY"] = keep
    return subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                          text=True)


@pytest.mark.parametrize("keep", [None, "1"])
def test_the_temporary_buffer_is_reused_without_faulting_its_pages_in_again(keep):
    result = json.loads(_run(keep).stdout)
    pages = TEMPORARY // os.sysconf("SC_PAGE_SIZE")
    assert result["applied"]
    assert statistics.median(result["faults"]) < pages // 20


def test_with_glibcs_defaults_every_call_faults_the_buffer_in_again():
    result = json.loads(_run("0").stdout)
    assert not result["applied"]
    # at least one fault per 2 MiB even where transparent huge pages map it in larger pieces
    assert statistics.median(result["faults"]) >= TEMPORARY // 2**21


def test_a_value_other_than_0_or_1_stops_with_a_message_naming_the_fix():
    out = _run("yes")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: STYLEJAX_KEEP_HOST_MEMORY='yes': set it to 1 (keep freed host memory, the "
        "default) or 0 (glibc's defaults)"]
