"""Checksums of a checkpoint's arrays, so that damaged bytes are found instead of trained on.

A checksum is a position-weighted sum of an array's bits, modulo 2^32, over two independent odd
weightings: integer arithmetic, so it is exact whatever the device layout, and the same computed
with jax on the devices (from the state being saved) or with numpy on the host (from the files
read back). Every weight is odd, hence invertible modulo 2^32: any change of one element changes
both sums.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Two multiplicative hashes of the element index (Knuth's and a second odd constant), forced odd.
_MULTIPLIERS = (0x9E3779B1, 0x85EBCA77)


def _bits(x, xp):
    """The array's bits as uint32, one per element."""
    dtype = np.dtype(x.dtype)
    if dtype.itemsize == 4:
        view = jax.lax.bitcast_convert_type(x, jnp.uint32) if xp is jnp else np.asarray(x).view(np.uint32)
    elif dtype.itemsize == 2:
        view = (jax.lax.bitcast_convert_type(x, jnp.uint16) if xp is jnp
                else np.asarray(x).view(np.uint16)).astype(xp.uint32)
    elif dtype.itemsize == 1:
        view = (x.astype(jnp.uint8) if xp is jnp else np.asarray(x).view(np.uint8)).astype(xp.uint32)
    else:
        raise TypeError(f"no checksum for dtype {dtype}")
    return view.reshape(-1)


def _array_checksum(x, xp) -> list:
    bits = _bits(x, xp)
    index = xp.arange(bits.size, dtype=xp.uint32)
    out = []
    for multiplier in _MULTIPLIERS:
        weights = index * xp.uint32(multiplier) | xp.uint32(1)
        out.append(xp.sum(bits * weights, dtype=xp.uint32))
    return out


def flat_arrays(tree: Any) -> dict[str, Any]:
    """{'g_params.mapping.fc0.bias': leaf, ...}: the dotted names orbax uses on disk."""
    return {jax.tree_util.keystr(path, simple=True, separator="."): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


@jax.jit
def _device_checksums(leaves: list) -> list:
    return [_array_checksum(x, jnp) for x in leaves]


def checksums(tree: Any) -> dict[str, str]:
    """{dotted array name: checksum} of a tree of jax arrays, computed on their devices."""
    arrays = flat_arrays(tree)
    sums = jax.device_get(_device_checksums(list(arrays.values())))
    return {name: f"{int(a):08x}{int(b):08x}" for name, (a, b) in zip(arrays, sums, strict=True)}


def host_checksums(tree: Any) -> dict[str, str]:
    """The same checksums of a tree of numpy arrays."""
    arrays = flat_arrays(tree)
    with np.errstate(over="ignore"):
        sums = [_array_checksum(np.asarray(x), np) for x in arrays.values()]
    return {name: f"{int(a):08x}{int(b):08x}" for name, (a, b) in zip(arrays, sums, strict=True)}


def mismatches(stored: dict[str, str], actual: dict[str, str]) -> list[str]:
    """The names whose checksum differs from the stored one (names not stored are skipped)."""
    return sorted(name for name, value in actual.items() if name in stored and stored[name] != value)
