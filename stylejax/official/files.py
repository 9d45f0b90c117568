"""One official network file (a stylegan2-ada-pytorch snapshot, a TensorFlow StyleGAN or StyleGAN2 .pkl)
as stylejax's architecture and variables."""

import dataclasses
import os

import numpy as np

from stylejax.errors import NetworkFileError
from stylejax.official.convert import (
    Architecture,
    discriminator_params,
    generator_architecture,
    generator_variables,
    with_discriminator,
)
from stylejax.official.tensorflow import (
    is_stylegan1,
    stylegan1_discriminator,
    stylegan1_generator,
    tf_discriminator,
    tf_generator,
)
from stylejax.official.unpickle import PersistentObject, TFNetwork, read_network_pickle

NETWORK_FILE_SUFFIXES = (".pkl", ".pickle")


@dataclasses.dataclass(frozen=True)
class NetworkFile:
    """What an official file holds, converted: G_ema always; G and D when the file has them."""

    path: str
    architecture: Architecture
    G_ema: dict  # flax variables: params, stats (w_avg), noise_consts
    G: dict | None
    D: dict | None  # {'params': ...}
    augment_p: float | None  # the ADA augmentation probability the snapshot was saved with

    def check_trainable(self) -> None:
        """Fine-tuning needs G, D and G_ema; a file with G_ema alone can only be sampled."""
        missing = [name for name in ("G", "D") if getattr(self, name) is None]
        if missing:
            raise NetworkFileError(f"{self.path} has no {' and no '.join(missing)}: fine-tuning needs "
                                   "G, D and G_ema (a training snapshot, network-snapshot-*.pkl); it "
                                   "can only be sampled and evaluated")


def is_network_file(path: str) -> bool:
    """A path names a network file, not a training run's workdir (a directory): a file, or a
    name ending in .pkl that is no directory."""
    return os.path.isfile(path) or (path.lower().endswith(NETWORK_FILE_SUFFIXES)
                                    and not os.path.isdir(path))


def _module_tensors(module: PersistentObject, prefix: str = "") -> dict[str, np.ndarray]:
    """The parameters and buffers of a pickled torch module and its submodules, by dotted name."""
    tensors = {}
    for group in ("_parameters", "_buffers"):
        for name, tensor in (module.state.get(group) or {}).items():
            if tensor is None:
                continue
            if not isinstance(tensor, np.ndarray):
                raise NetworkFileError(f"{prefix}{name} is a {type(tensor).__name__}, not a tensor")
            tensors[prefix + name] = tensor
    for name, child in (module.state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise NetworkFileError(f"submodule {prefix}{name} is not a network module")
        tensors.update(_module_tensors(child, f"{prefix}{name}."))
    return tensors


def _torch_network(module, key: str, class_name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(constructor kwargs, tensors) of one network of a stylegan2-ada-pytorch snapshot."""
    if not isinstance(module, PersistentObject) or module.class_name != class_name:
        found = module.class_name if isinstance(module, PersistentObject) else type(module).__name__
        raise NetworkFileError(f"its {key!r} is a {found}, not an official {class_name}")
    kwargs, args = module.state.get("_init_kwargs"), module.state.get("_init_args", ())
    if not isinstance(kwargs, dict) or args:
        raise NetworkFileError(f"its {key!r} lacks the constructor kwargs official snapshots keep")
    return dict(kwargs), _module_tensors(module)


def _augment_p(pipe) -> float | None:
    if not isinstance(pipe, PersistentObject):
        return None
    p = (pipe.state.get("_buffers") or {}).get("p")
    return None if p is None else float(np.asarray(p).reshape(-1)[0])


def _from_torch_snapshot(path: str, data: dict) -> NetworkFile:
    g_kwargs, ema_tensors = _torch_network(data["G_ema"], "G_ema", "Generator")
    arch = generator_architecture(g_kwargs)
    G = D = None
    if data.get("D") is not None:
        d_kwargs, d_tensors = _torch_network(data["D"], "D", "Discriminator")
        arch = with_discriminator(arch, d_kwargs)
        D = {"params": discriminator_params(arch, d_tensors)}
    if data.get("G") is not None:
        G = generator_variables(arch, _torch_network(data["G"], "G", "Generator")[1], "G")
    return NetworkFile(path, arch, generator_variables(arch, ema_tensors, "G_ema"), G, D,
                       _augment_p(data.get("augment_pipe")))


def _from_stylegan1_release(path: str, G: TFNetwork | None, D: TFNetwork | None,
                            Gs: TFNetwork) -> NetworkFile:
    arch, gs_tensors = stylegan1_generator(Gs)
    d_params = g_vars = None
    if D is not None:
        arch, d_tensors = stylegan1_discriminator(D, arch)
        d_params = {"params": discriminator_params(arch, d_tensors)}
    if G is not None:
        g_vars = generator_variables(arch, stylegan1_generator(G)[1], "G")
    return NetworkFile(path, arch, generator_variables(arch, gs_tensors, "Gs"), g_vars, d_params, None)


def _from_tf_release(path: str, G: TFNetwork | None, D: TFNetwork | None,
                     Gs: TFNetwork) -> NetworkFile:
    if is_stylegan1(Gs):
        return _from_stylegan1_release(path, G, D, Gs)
    g_kwargs, gs_tensors = tf_generator(Gs)
    arch = generator_architecture(g_kwargs)
    d_params = g_vars = None
    if D is not None:
        d_kwargs, d_tensors = tf_discriminator(D)
        arch = with_discriminator(arch, d_kwargs)
        d_params = {"params": discriminator_params(arch, d_tensors)}
    if G is not None:
        g_vars = generator_variables(arch, tf_generator(G)[1], "G")
    return NetworkFile(path, arch, generator_variables(arch, gs_tensors, "Gs"), g_vars, d_params, None)


def load_network_file(path: str) -> NetworkFile:
    """Reads and converts an official network file; NetworkFileError (one line, naming the
    file) for anything it cannot use. Nothing stored in the file is executed."""
    data = read_network_pickle(path)
    try:
        if isinstance(data, dict) and "G_ema" in data:
            return _from_torch_snapshot(path, data)
        if isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetwork) for n in data):
            return _from_tf_release(path, *data)
        if isinstance(data, TFNetwork):
            return _from_tf_release(path, None, None, data)
    except NetworkFileError as e:
        raise NetworkFileError(f"{path}: {e}") from None
    kind = f"a dict with keys {sorted(map(str, data))}" if isinstance(data, dict) else \
        f"a {type(data).__name__}"
    raise NetworkFileError(f"{path} holds {kind}, not a network snapshot: use a stylegan2-ada-pytorch "
                           "network-snapshot-*.pkl (with G_ema) or a TensorFlow StyleGAN or StyleGAN2 .pkl")
