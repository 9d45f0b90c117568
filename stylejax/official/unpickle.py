"""A pickle reader for NVIDIA's network files that never runs code from the file.

Official snapshots are pickles whose networks rebuild themselves by executing Python source
stored in the file (stylegan2-ada-pytorch's `torch_utils.persistence`) or need the TensorFlow
release's `dnnlib.tflib`. Here every global the file may name is on an allow-list and maps to a
function of ours that builds plain data: dicts, numpy arrays, `PersistentObject` and `TFNetwork`
records. The stored source is kept as an opaque string and never executed, imported or evaluated.
Tensors are parsed from torch's legacy `torch.save` byte format without torch (`torch_save`).
"""

import collections
import dataclasses
import io
import pickle
import struct

import numpy as np

from stylejax.errors import NetworkFileError
from stylejax.official.torch_save import read_legacy, tensor_view

NUMERIC_KINDS = "biufc"


class EasyDict(dict):
    """dnnlib.util.EasyDict as data: a dict whose keys also read as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclasses.dataclass
class PersistentObject:
    """A `torch_utils.persistence` object: its class name and its pickled __dict__ (`state`)."""

    class_name: str
    state: dict


class TFNetwork:
    """A `dnnlib.tflib.network.Network` of the TensorFlow releases, as its pickled state dict."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise NetworkFileError(f"a TensorFlow Network's state is a {type(state).__name__}, "
                                   "not a dict")
        self.state = state


def _persistent_object(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(
            meta.get("class_name"), str) or not isinstance(meta.get("state"), dict):
        raise NetworkFileError("a torch_utils.persistence record without a class name and a state "
                               "dict; only network classes are supported")
    return PersistentObject(meta["class_name"], meta["state"])


def _checked_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind not in NUMERIC_KINDS:
        raise NetworkFileError(f"a numpy array of dtype {dtype} (only numbers are read)")
    return dtype


def _numpy_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str):
        raise NetworkFileError(f"a numpy dtype {spec!r}")
    return _checked_dtype(np.dtype(spec, align, copy))


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or not isinstance(data, bytes):
        raise NetworkFileError("a numpy scalar that is not a number")
    return np.frombuffer(data, _checked_dtype(dtype), count=1)[0]


def _numpy_reconstruct(cls, shape, typecode):
    """The empty array numpy's own pickling starts from; BUILD then fills it (numpy's
    ndarray.__setstate__, with a dtype that passed `_numpy_dtype`)."""
    if cls is not np.ndarray:
        raise NetworkFileError(f"a numpy array subclass {cls!r}")
    return np.ndarray((0,), np.uint8)


def _rebuild_tensor(storage, offset, size, stride, *_):
    """torch._utils._rebuild_tensor_v2: a strided view of a storage, bounds-checked, copied."""
    return np.array(tensor_view(storage, offset, size, stride))


def _rebuild_parameter(data, *_):
    """torch._utils._rebuild_parameter(_with_state): the parameter is its tensor."""
    return data


def _load_storage(data):
    """torch.storage._load_from_bytes: a legacy torch.save stream of one storage."""
    if not isinstance(data, bytes):
        raise NetworkFileError("a tensor storage that is not a byte string")
    storage = read_legacy(io.BytesIO(data))
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise NetworkFileError("a tensor storage record that holds something else than a storage")
    return storage


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_object,
    ("dnnlib.tflib.network", "Network"): TFNetwork,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise NetworkFileError(
                f"refused: it names the global {module}.{name}, which no official network file "
                "uses; nothing from the file was run") from None

    def persistent_load(self, pid):
        raise NetworkFileError("refused: a persistent id, which official network files do not use")


def read_network_pickle(path: str):
    """The file's pickled object as plain data. Raises NetworkFileError (naming the file) for a
    file that is missing, not a pickle, truncated, or names any global off the allow-list."""
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f).load()
    except NetworkFileError as e:
        raise NetworkFileError(f"{path}: {e}") from None
    except OSError as e:
        raise NetworkFileError(f"cannot read network file {path}: {e.strerror or e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            struct.error, RecursionError) as e:  # what the unpickler raises on a damaged stream
        raise NetworkFileError(f"{path} is not a readable network pickle ({type(e).__name__}: {e}); "
                               "use a stylegan2-ada-pytorch snapshot or a TensorFlow StyleGAN2 "
                               ".pkl, complete and unmodified") from None
