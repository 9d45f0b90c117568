"""keep_freed_host_memory: on by default where the CPU will be JAX's default backend, off where an
accelerator will be, overridden by STYLEJAX_KEEP_HOST_MEMORY; where on, a large freed block stays
in the process's heap instead of being mapped from the kernel anew."""

import ctypes
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="tunes glibc's malloc, read back with mallinfo2 (glibc 2.33)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = 64 * 2**20  # over glibc's largest mmap threshold (32 MiB): by default mapped, unmapped on free

# In a fresh process (the settings are process-wide): the call, then glibc's account of one
# 64 MiB block while held (bytes in mapped blocks, bytes of the heap) and of the heap after its
# free. The script starts no JAX backend, so JAX_PLATFORMS may name one this machine lacks.
_SCRIPT = f"""
import ctypes, json
from stylejax.host_memory import keep_freed_host_memory
applied = keep_freed_host_memory()
import jax
import numpy as np

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
block = np.ones({BLOCK}, np.uint8)
held = mallinfo2()
del block
print(json.dumps({{"applied": applied,
                  "async_dispatch": jax.config.read("jax_cpu_enable_async_dispatch"),
                  "mapped_while_held": held.hblkhd, "heap_after_free": mallinfo2().arena}}))
"""

ACCELERATOR_PACKAGE = re.compile(r"jax[-_](cuda|rocm)\d*[-_](plugin|pjrt)|libtpu|jax[-_]metal")


def _run(switch: str | None, platforms: str | None, plugin_dir: str | None = None):
    env = {k: v for k, v in os.environ.items() if k not in ("STYLEJAX_KEEP_HOST_MEMORY", "JAX_PLATFORMS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (plugin_dir, REPO) if p)
    if switch is not None:
        env["STYLEJAX_KEEP_HOST_MEMORY"] = switch
    if platforms is not None:
        env["JAX_PLATFORMS"] = platforms
    return subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300)


def _result(*args, **kwargs) -> dict:
    out = _run(*args, **kwargs)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _assert_kept(result: dict) -> None:
    assert result["applied"] and not result["async_dispatch"]
    assert result["mapped_while_held"] < BLOCK  # served by the heap...
    assert result["heap_after_free"] >= BLOCK  # ...which keeps it after the free


def _assert_glibc_defaults(result: dict) -> None:
    assert not result["applied"] and result["async_dispatch"]
    assert result["mapped_while_held"] >= BLOCK


@pytest.mark.parametrize("switch,platforms", [
    (None, "cpu"), (None, "cpu,cuda"),  # the CPU first: its default backend
    ("1", "tpu"),  # the switch overrides the backend
])
def test_kept_where_the_cpu_is_the_default_backend_or_the_switch_is_1(switch, platforms):
    _assert_kept(_result(switch, platforms))


@pytest.mark.parametrize("switch,platforms", [
    (None, "tpu"), (None, "cuda,cpu"),  # an accelerator first; not started by the decision
    ("0", "cpu"),
])
def test_glibc_defaults_where_an_accelerator_is_the_default_backend_or_the_switch_is_0(switch,
                                                                                         platforms):
    _assert_glibc_defaults(_result(switch, platforms))


def test_without_jax_platforms_an_installed_accelerator_plugin_keeps_glibc_defaults(tmp_path):
    plugin = tmp_path / "jax_plugins" / "xla_some_accelerator"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("")
    _assert_glibc_defaults(_result(None, None, plugin_dir=str(tmp_path)))


@pytest.mark.skipif(any(ACCELERATOR_PACKAGE.fullmatch(d.metadata["Name"] or "")
                        for d in importlib.metadata.distributions()),
                    reason="an accelerator plugin is installed")
def test_without_jax_platforms_or_plugins_a_cpu_only_process_keeps_freed_memory():
    _assert_kept(_result(None, None))


def test_a_value_other_than_0_or_1_stops_with_a_message_naming_the_fix():
    out = _run("yes", "cpu")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: STYLEJAX_KEEP_HOST_MEMORY='yes': set it to 1 (keep freed host memory) or 0 "
        "(glibc's defaults), or leave it unset (kept where the CPU is JAX's default backend)"]
