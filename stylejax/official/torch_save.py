"""Reading `torch.save` files without torch and without running code from them.

Two formats exist. The legacy one (before torch 1.6, e.g. the LPIPS v0.1 heads `vgg.pth`) is a
stream of pickles: a magic number, the protocol, system info, the saved object (tensors refer to
storages by persistent id), the list of storage keys, then per key an int64 element count and
the raw little-endian bytes. The zip format (torch 1.6 on) is a zip whose `PREFIX/data.pkl` is
the object and whose `PREFIX/data/KEY` entries are the storages' raw bytes. Either way the only
globals a file may name are tensor rebuilders, storage types and OrderedDict: what a state dict
needs. TorchScript archives (`torch.jit.save`, e.g. NVIDIA's metrics `vgg16.pt`) hold compiled
code next to the weights and are refused.
"""

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Callable

import numpy as np

from stylejax.errors import NetworkFileError

# torch's storage classes and the numpy dtypes of their raw little-endian bytes.
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# (storage key, storage class name, element count) -> the storage as a 1-D array
StorageSource = Callable[[str, str, int], np.ndarray]


def tensor_view(storage: np.ndarray, offset: int, size, stride) -> np.ndarray:
    """The strided view torch._utils._rebuild_tensor_v2 makes of a storage, bounds-checked."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise NetworkFileError("a tensor whose storage is not a torch storage")
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
        raise NetworkFileError(f"a tensor of size {size}, stride {stride}, offset {offset}")
    if 0 not in size:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= storage.size:
            raise NetworkFileError(f"a tensor of size {size} reads past its storage of "
                                   f"{storage.size} elements (the file is damaged)")
    return np.lib.stride_tricks.as_strided(storage[offset:], size,
                                           tuple(s * storage.itemsize for s in stride))


def storage_dtype(name: str) -> np.dtype:
    """The dtype a storage class's elements are read into (bfloat16 widens to float32)."""
    return np.dtype(np.float32 if STORAGE_DTYPES[name] == "bfloat16" else STORAGE_DTYPES[name])


def stored_size(name: str, numel: int) -> int:
    """Bytes of `numel` elements of storage class `name` in a file."""
    return numel * (2 if STORAGE_DTYPES[name] == "bfloat16" else np.dtype(STORAGE_DTYPES[name]).itemsize)


def decode_storage(raw: bytes, name: str, numel: int) -> np.ndarray:
    """The `numel` elements of storage class `name` from their raw little-endian bytes."""
    stored = np.dtype(np.uint16 if STORAGE_DTYPES[name] == "bfloat16" else STORAGE_DTYPES[name])
    if len(raw) != numel * stored.itemsize:
        raise NetworkFileError(f"a tensor storage of {len(raw)} bytes where {numel} elements need "
                               f"{numel * stored.itemsize} (the file is truncated)")
    array = np.frombuffer(raw, stored.newbyteorder("<")).astype(stored.newbyteorder("="))
    if STORAGE_DTYPES[name] == "bfloat16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _rebuild_tensor(storage, offset, size, stride, *_):
    return tensor_view(storage, offset, size, stride)


def _rebuild_parameter(data, *_):
    return data


STATE_DICT_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): name for name in STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Only a state dict's globals; storages come from `storage` by persistent id."""

    def __init__(self, file, storage: StorageSource):
        super().__init__(file)
        self._storage = storage

    def find_class(self, module, name):
        try:
            return STATE_DICT_GLOBALS[(module, name)]
        except KeyError:
            raise NetworkFileError(f"refused: it names the global {module}.{name}, which a saved "
                                   "state dict does not use; nothing from the file was run") from None

    def persistent_load(self, pid):
        # ('storage', class, key, location, numel[, view metadata: None since torch 0.4])
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and pid[1] in STORAGE_DTYPES and isinstance(pid[4], int) and pid[4] >= 0
                and pid[5:] in ((), (None,))):
            raise NetworkFileError(f"a tensor storage with persistent id {pid!r}")
        return self._storage(str(pid[2]), pid[1], pid[4])


def read_legacy(stream: io.BufferedIOBase):
    """The object of a legacy torch.save stream; tensors are views of storages filled from the
    stream's tail once the object is read."""
    storages = {}

    def storage(key: str, name: str, numel: int) -> np.ndarray:
        if key not in storages:
            storages[key] = (name, np.zeros(numel, storage_dtype(name)))
        return storages[key][1]

    load = lambda: _Unpickler(stream, storage).load()  # noqa: E731
    if load() != LEGACY_MAGIC:
        raise NetworkFileError("not a torch.save file (no legacy magic number and not a zip)")
    load()  # protocol version
    info = load()
    if not isinstance(info, dict) or not info.get("little_endian", True):
        raise NetworkFileError("a big-endian torch.save file")
    obj = load()
    keys = load()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
        raise NetworkFileError("a storage key list that does not match the saved tensors")
    for key in map(str, keys):
        name, array = storages[key]
        header = stream.read(8)
        if len(header) != 8:
            raise NetworkFileError("a tensor storage cut short (the file is truncated)")
        (numel,) = struct.unpack("<q", header)
        if numel != array.size:
            raise NetworkFileError(f"storage {key} holds {numel} elements, its tensors say "
                                   f"{array.size}")
        array[:] = decode_storage(stream.read(stored_size(name, numel)), name, numel)
    return obj


def _read_zip(archive: zipfile.ZipFile):
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pickles:
        raise NetworkFileError("a zip without the data.pkl of a torch.save file")
    prefix = pickles[0][:-len("data.pkl")]
    if f"{prefix}constants.pkl" in names or any(n.startswith(f"{prefix}code/") for n in names):
        raise NetworkFileError("a TorchScript archive (torch.jit.save: compiled code next to the "
                               "weights), not a torch.save state dict")
    if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
        raise NetworkFileError("a big-endian torch.save file")

    storages = {}

    def storage(key: str, name: str, numel: int) -> np.ndarray:
        if key not in storages:
            try:
                raw = archive.read(f"{prefix}data/{key}")
            except KeyError:
                raise NetworkFileError(f"tensor storage data/{key} is missing from the zip") from None
            storages[key] = decode_storage(raw[:stored_size(name, numel)], name, numel)
        return storages[key]

    return _Unpickler(io.BytesIO(archive.read(pickles[0])), storage).load()


def read_torch_file(path: str):
    """The object `torch.save` wrote to `path` (zip or legacy format), tensors as numpy arrays.
    Raises NetworkFileError naming the file for a damaged file or one that names any global a
    state dict does not need."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                obj = _read_zip(archive)
        else:
            with open(path, "rb") as f:
                obj = read_legacy(f)
    except NetworkFileError as e:
        raise NetworkFileError(f"{path}: {e}") from None
    except OSError as e:
        raise NetworkFileError(f"cannot read {path}: {e.strerror or e}") from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError,
            IndexError, KeyError, struct.error, RecursionError) as e:
        raise NetworkFileError(f"{path} is not a readable torch.save file ({type(e).__name__}: "
                               f"{e})") from None
    return obj


def state_dict(path: str) -> dict[str, np.ndarray]:
    """A saved state dict {name: float32 array}; anything else in the file is refused."""
    obj = read_torch_file(path)
    if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        raise NetworkFileError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    return {k: np.array(v, np.float32) for k, v in obj.items()}
