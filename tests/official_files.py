"""Writes network files in the official formats, opcode for opcode, for the tests.

A small pickle assembler: `Global(module, name)` is written as the global itself (GLOBAL or
STACK_GLOBAL), `Call(func, args, state, items)` as REDUCE (+ SETITEMS, BUILD). So a test can
write what stylegan2-ada-pytorch (torch_utils.persistence records, legacy torch storages) and
the TensorFlow release (dnnlib.tflib.network.Network states, numpy arrays) write, with the old
or the new module names, and malicious files, without torch, TensorFlow or their code.
"""

import collections
import io
import pickle
import struct

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_CLASS = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage",
                 np.dtype(np.float16): "HalfStorage"}


class Global:
    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle only writes callables as REDUCE's function
        raise TypeError("a Global is written, never called")


class Call:
    """func(*args), then dict items set on the result, then BUILD with state."""

    def __init__(self, func, args=(), state=None, items=None):
        self.func, self.args, self.state, self.items = func, tuple(args), state, items

    def __reduce__(self):
        return self.func, self.args, self.state, None, iter(self.items.items()) if self.items else None


class _Assembler(pickle._Pickler):
    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Global):
            if self.proto >= 4:
                self.save(obj.module)
                self.save(obj.name)
                self.write(pickle.STACK_GLOBAL)
            else:
                self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


def dumps(obj, protocol: int = 4) -> bytes:
    f = io.BytesIO()
    _Assembler(f, protocol).dump(obj)
    return f.getvalue()


def _storage_bytes(array: np.ndarray) -> bytes:
    """torch.save(storage) in the legacy format: magic, protocol, sys info, the storage's
    persistent record, its key list, then the element count and the raw bytes."""
    flat = np.ascontiguousarray(array).reshape(-1)
    key = "94155230708304"

    class Pickler(_Assembler):
        def persistent_id(self, obj):
            if obj is flat:
                return ("storage", Global("torch", STORAGE_CLASS[flat.dtype]), key, "cpu", flat.size,
                        None)
            return None

    f = io.BytesIO()
    for part in (LEGACY_MAGIC, 1001, dict(protocol_version=1001, little_endian=True,
                                          type_sizes=dict(short=2, int=4, long=4))):
        f.write(dumps(part, protocol=2))
    Pickler(f, 2).dump(flat)
    f.write(dumps([key], protocol=2))
    f.write(struct.pack("<q", flat.size))
    f.write(flat.astype(flat.dtype.newbyteorder("<")).tobytes())
    return f.getvalue()


def tensor(array: np.ndarray, parameter: bool = True, new_names: bool = True):
    """A torch tensor or parameter as stylegan2-ada-pytorch pickles it."""
    array = np.asarray(array)
    stride = tuple(s // array.itemsize for s in np.array(array, order="C").strides)
    storage = Call(Global("torch.storage", "_load_from_bytes"), (_storage_bytes(array),))
    t = Call(Global("torch._utils", "_rebuild_tensor_v2"),
             (storage, 0, array.shape, stride, False, Call(Global("collections", "OrderedDict"))))
    if not parameter:
        return t
    if new_names:
        return Call(Global("torch._utils", "_rebuild_parameter_with_state"),
                    (t, True, Call(Global("collections", "OrderedDict")), {}))
    return Call(Global("torch._utils", "_rebuild_parameter"),
                (t, True, Call(Global("collections", "OrderedDict"))))


def easydict(d: dict, new_names: bool = True):
    module = "dnnlib.util" if new_names else "dnnlib"
    return Call(Global(module, "EasyDict"), items={k: easydict(v, new_names) if isinstance(v, dict)
                                                  else v for k, v in d.items()})


def numpy_scalar(value: np.generic, new_names: bool = True):
    module = "numpy._core.multiarray" if new_names else "numpy.core.multiarray"
    dtype = Call(Global("numpy", "dtype"), (value.dtype.str[1:], False, True),
                 state=(3, "<", None, None, None, -1, -1, 0))
    return Call(Global(module, "scalar"), (dtype, value.tobytes()))


def persistent(class_name: str, state: dict, module_src: str = "# source omitted\n"):
    meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)
    return Call(Global("torch_utils.persistence", "_reconstruct_persistent_obj"), (meta,))


def torch_module(class_name: str, kwargs: dict | None, tensors: dict[str, np.ndarray],
                 buffers: tuple[str, ...] = ("w_avg", "noise_const", "resample_filter", "p"),
                 new_names: bool = True, module_src: str = "# source omitted\n"):
    """A persistent module tree from dotted tensor names (buffers by their last name)."""
    params, bufs, children = {}, {}, collections.defaultdict(dict)
    for name, value in tensors.items():
        head, _, rest = name.partition(".")
        if rest:
            children[head][rest] = value
        elif head in buffers:
            bufs[head] = tensor(value, parameter=False, new_names=new_names)
        else:
            params[head] = tensor(value, new_names=new_names)
    state = dict(training=False, _parameters=params, _buffers=bufs,
                 _modules={k: torch_module("Module", None, v, buffers, new_names, module_src)
                           for k, v in children.items()})
    if kwargs is not None:
        state.update(_init_args=(), _init_kwargs=easydict(kwargs, new_names))
    return persistent(class_name, state, module_src)


def write(path, obj, protocol: int = 4) -> None:
    with open(path, "wb") as f:
        f.write(dumps(obj, protocol))


def tf_array(array: np.ndarray, new_names: bool = False):
    """A numpy array as numpy pickles it (the TF release: numpy 1's module names)."""
    array = np.array(array, np.float32, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
    module = "numpy._core.multiarray" if new_names else "numpy.core.multiarray"
    dtype = Call(Global("numpy", "dtype"), ("f4", False, True), state=(3, "<", None, None, None, -1, -1, 0))
    return Call(Global(module, "_reconstruct"), (Global("numpy", "ndarray"), (0,), b"b"),
                state=(1, array.shape, dtype, False, array.tobytes()))


def tf_network(name: str, static_kwargs: dict, variables: dict[str, np.ndarray],
               components: dict | None = None):
    """A dnnlib.tflib.network.Network as the TF release pickles it (version 4 state)."""
    state = dict(version=4, name=name, static_kwargs=static_kwargs,
                 components=easydict(components or {}), build_module_src="# source omitted\n",
                 build_func_name=f"training.networks_stylegan2.{name}",
                 variables=[(k, tf_array(v)) for k, v in variables.items()])
    return Call(Global("dnnlib.tflib.network", "Network"), state=state)


def _state_dict_pickle(tensors: dict[str, np.ndarray], keys: dict[int, str], protocol: int,
                       legacy: bool):
    """The pickle torch.save writes for a state dict, each tensor's storage by persistent id
    (the legacy format's ids end with a view record, always None)."""
    flats = {}

    class Pickler(_Assembler):
        def persistent_id(self, obj):
            if id(obj) in keys:
                return ("storage", Global("torch", STORAGE_CLASS[obj.dtype]), keys[id(obj)], "cpu",
                        obj.size) + ((None,) if legacy else ())
            return None

    items = {}
    for name, array in tensors.items():
        # a view of a contiguous array (a transpose, a slice) is written as torch would: its
        # base's storage with an offset and strides
        if array.base is None or not array.base.flags.c_contiguous:
            array = np.ascontiguousarray(array).copy()  # owns its data: its own storage
        base = array if array.base is None else array.base
        flat = flats.setdefault(id(base), base.reshape(-1))
        keys[id(flat)] = keys.get(id(flat), str(len(keys)))
        offset = array.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        stride = tuple(s // array.itemsize for s in array.strides)
        items[name] = Call(Global("torch._utils", "_rebuild_tensor_v2"),
                           (flat, offset // array.itemsize, array.shape, stride, False,
                            Call(Global("collections", "OrderedDict"))))
    f = io.BytesIO()
    Pickler(f, protocol).dump(Call(Global("collections", "OrderedDict"), items=items))
    return f.getvalue(), flats


def write_state_dict(path, tensors: dict[str, np.ndarray], zip_format: bool = True) -> None:
    """torch.save(state_dict) as torch >= 1.6 writes it (zip: archive/data.pkl, archive/data/N,
    version) or as older torch did (the legacy stream of pickles, storages at the end)."""
    import zipfile

    keys: dict[int, str] = {}
    data, flats = _state_dict_pickle(tensors, keys, protocol=2, legacy=not zip_format)
    if zip_format:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("archive/data.pkl", data)
            archive.writestr("archive/byteorder", "little")
            for flat in flats.values():
                archive.writestr(f"archive/data/{keys[id(flat)]}", flat.astype(
                    flat.dtype.newbyteorder("<")).tobytes())
            archive.writestr("archive/version", "3\n")
        return
    with open(path, "wb") as f:
        for part in (LEGACY_MAGIC, 1001, dict(protocol_version=1001, little_endian=True,
                                              type_sizes=dict(short=2, int=4, long=4))):
            f.write(dumps(part, protocol=2))
        f.write(data)
        f.write(dumps([keys[id(flat)] for flat in flats.values()], protocol=2))
        for flat in flats.values():
            f.write(struct.pack("<q", flat.size))
            f.write(flat.astype(flat.dtype.newbyteorder("<")).tobytes())
