"""Official StyleGAN2 networks (stylegan2-ada-pytorch names and layouts) as stylejax variables.

An official network arrives as its constructor kwargs and a dict of named tensors in the
PyTorch module's naming (`synthesis.b8.conv0.weight`, NCHW / OIHW layouts); the TensorFlow
release is first renamed into that form (stylejax.official.tensorflow). Every variable of the
stylejax network the kwargs describe is taken from exactly one tensor of matching shape, and a
tensor left over means an architecture stylejax does not represent: both are refused in one line.
"""

import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from stylejax.errors import ConfigError, NetworkFileError
from stylejax.models import Discriminator, Generator
from stylejax.models.resample import DEFAULT_FILTER
from stylejax.models.stylegan1 import StyleGAN1Discriminator, StyleGAN1Generator

SUPPORTED = ("stylejax reads StyleGAN2 and StyleGAN2-ADA networks (stylegan2-ada-pytorch snapshots "
             "and the TensorFlow StyleGAN2 release) and the TensorFlow StyleGAN release")
# Official constructor kwargs stylejax has no use for: precision and memory-layout choices (stylejax
# computes in float32, as the official force_fp32) and training-only settings.
IGNORED_KWARGS = {"num_fp16_res", "fp16_channels_last", "freeze_layers", "class_name"}


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What a stylejax config needs to rebuild an official G and D (config.model and the data's
    sizes)."""

    resolution: int
    img_channels: int
    c_dim: int
    z_dim: int
    w_dim: int
    mapping_layers: int
    channel_base: int
    channel_max: int
    g_architecture: str
    conv_clamp: float | None
    use_noise: bool
    d_architecture: str = "resnet"
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    generation: str = "stylegan2"  # or "stylegan1": the TensorFlow StyleGAN release

    def config_values(self) -> dict[str, object]:
        """The config keys (dotted) that rebuild these networks; the label count and image
        channels come from the data. The minibatch-stddev group is not among them: it depends on
        the batch, not on the weights."""
        fields = dataclasses.asdict(self)
        model = ("generation", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max",
                 "g_architecture", "d_architecture", "conv_clamp", "use_noise", "mbstd_num_channels")
        return {"resolution": self.resolution, **{f"model.{k}": fields[k] for k in model}}

    def apply_to(self, config: ml_collections.ConfigDict, explicit=(), source: str = "") -> None:
        """Sets `config` to this architecture. A key in `explicit` (given on the command line)
        whose value differs is an error naming both."""
        for key, value in self.config_values().items():
            parent, _, name = key.rpartition(".")
            node = config[parent] if parent else config
            if key in explicit and node[name] != value:
                raise ConfigError(f"--config.{key}={node[name]!r} conflicts with the network "
                                  f"{source}, whose {name} is {value!r}; drop the override "
                                  "(the architecture comes from the file)")
            with config.unlocked():
                node[name] = value

    def generator(self) -> Generator | StyleGAN1Generator:
        with _as_unsupported():
            if self.generation == "stylegan1":
                return StyleGAN1Generator(z_dim=self.z_dim, w_dim=self.w_dim,
                                          resolution=self.resolution, img_channels=self.img_channels,
                                          channel_base=self.channel_base,
                                          channel_max=self.channel_max,
                                          mapping_layers=self.mapping_layers, use_noise=self.use_noise)
            return Generator(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim,
                             resolution=self.resolution, img_channels=self.img_channels,
                             channel_base=self.channel_base, channel_max=self.channel_max,
                             mapping_layers=self.mapping_layers, architecture=self.g_architecture,
                             conv_clamp=self.conv_clamp, use_noise=self.use_noise)

    def discriminator(self) -> Discriminator | StyleGAN1Discriminator:
        with _as_unsupported():
            if self.generation == "stylegan1":
                return StyleGAN1Discriminator(resolution=self.resolution,
                                              img_channels=self.img_channels,
                                              channel_base=self.channel_base,
                                              channel_max=self.channel_max,
                                              mbstd_group_size=self.mbstd_group_size,
                                              mbstd_num_channels=self.mbstd_num_channels)
            return Discriminator(c_dim=self.c_dim, architecture=self.d_architecture,
                                 resolution=self.resolution, img_channels=self.img_channels,
                                 channel_base=self.channel_base, channel_max=self.channel_max,
                                 mbstd_group_size=self.mbstd_group_size,
                                 mbstd_num_channels=self.mbstd_num_channels,
                                 conv_clamp=self.conv_clamp)


def _unsupported(what: str) -> NetworkFileError:
    return NetworkFileError(f"unsupported network: {what}; {SUPPORTED}")


@contextlib.contextmanager
def _as_unsupported():
    """A network stylejax's modules refuse (a resolution above 1024, an unknown architecture)
    is an unsupported network file, said as such."""
    try:
        yield
    except ValueError as e:
        raise _unsupported(str(e).split(";")[0]) from None


def _take(kwargs: dict, defaults: dict, where: str) -> dict:
    """kwargs over their official defaults; a kwarg the official class has no such name for
    (another architecture, e.g. StyleGAN3) is refused."""
    unknown = sorted(set(kwargs) - set(defaults) - IGNORED_KWARGS)
    if unknown:
        raise _unsupported(f"{where} has the option {unknown[0]!r} (another architecture, such as "
                           "StyleGAN3)")
    return {k: _plain(kwargs.get(k, v)) for k, v in defaults.items()}


def _plain(value):
    """numpy scalars (as pickled kwargs may hold) as Python numbers."""
    return value.item() if isinstance(value, np.generic) else value


def _require(value, expected, what: str) -> None:
    if value != expected and not (isinstance(expected, float) and np.isclose(value, expected)):
        raise _unsupported(f"{what} is {value!r} (stylejax builds {expected!r})")


def _check_mapping(mapping: dict, w_dim: int, where: str, lr_multiplier: float = 0.01) -> None:
    _require(mapping["activation"], "lrelu", f"{where} activation")
    _require(float(mapping["lr_multiplier"]), lr_multiplier, f"{where} lr_multiplier")
    for key in ("embed_features", "layer_features"):
        _require(mapping[key] or w_dim, w_dim, f"{where} {key}")


def _check_filter(taps) -> None:
    _require(list(np.asarray(taps, float)), list(DEFAULT_FILTER), "the resampling filter")


def generator_architecture(kwargs: dict) -> Architecture:
    """The Architecture of an official Generator's constructor kwargs."""
    top = _take(kwargs, dict(z_dim=None, c_dim=None, w_dim=None, img_resolution=None,
                             img_channels=None, mapping_kwargs={}, synthesis_kwargs={}), "G")
    mapping = _take(top["mapping_kwargs"], dict(
        num_layers=8, embed_features=None, layer_features=None, activation="lrelu",
        lr_multiplier=0.01, w_avg_beta=0.995), "G mapping_kwargs")
    synthesis = _take(top["synthesis_kwargs"], dict(
        channel_base=32768, channel_max=512, conv_clamp=None, architecture="skip",
        resample_filter=[1, 3, 3, 1], use_noise=True, activation="lrelu", kernel_size=3),
        "G synthesis_kwargs")
    missing = [k for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels") if top[k] is None]
    if missing:
        raise NetworkFileError(f"G's constructor kwargs lack {missing[0]!r}")
    w_dim = top["w_dim"]
    _check_mapping(mapping, w_dim, "G mapping")
    _require(mapping["w_avg_beta"], 0.995, "G mapping w_avg_beta")
    _require(synthesis["activation"], "lrelu", "G synthesis activation")
    _require(synthesis["kernel_size"], 3, "G synthesis kernel_size")
    _check_filter(synthesis["resample_filter"])
    clamp = synthesis["conv_clamp"]
    return Architecture(
        resolution=top["img_resolution"], img_channels=top["img_channels"], c_dim=top["c_dim"],
        z_dim=top["z_dim"], w_dim=w_dim, mapping_layers=mapping["num_layers"],
        channel_base=synthesis["channel_base"], channel_max=synthesis["channel_max"],
        g_architecture=synthesis["architecture"], conv_clamp=None if clamp is None else float(clamp),
        use_noise=bool(synthesis["use_noise"]))


def with_discriminator(arch: Architecture, kwargs: dict) -> Architecture:
    """`arch` with the discriminator settings of an official Discriminator's kwargs, which must
    share G's sizes (stylejax configs share them)."""
    top = _take(kwargs, dict(c_dim=None, img_resolution=None, img_channels=None,
                             architecture="resnet", channel_base=32768, channel_max=512,
                             conv_clamp=None, cmap_dim=None, block_kwargs={}, mapping_kwargs={},
                             epilogue_kwargs={}), "D")
    block = _take(top["block_kwargs"], dict(activation="lrelu", resample_filter=[1, 3, 3, 1]),
                  "D block_kwargs")
    mapping = _take(top["mapping_kwargs"], dict(
        num_layers=8, embed_features=None, layer_features=None, activation="lrelu",
        lr_multiplier=0.01), "D mapping_kwargs")
    epilogue = _take(top["epilogue_kwargs"], dict(mbstd_group_size=4, mbstd_num_channels=1,
                                                  activation="lrelu"), "D epilogue_kwargs")
    for key, value in (("c_dim", arch.c_dim), ("img_resolution", arch.resolution),
                       ("img_channels", arch.img_channels), ("channel_base", arch.channel_base),
                       ("channel_max", arch.channel_max)):
        _require(top[key], value, f"D's {key} (G's is {value})")
    _require(None if top["conv_clamp"] is None else float(top["conv_clamp"]), arch.conv_clamp,
             "D's conv_clamp")
    c4 = min(arch.channel_base // 4, arch.channel_max)
    _require(top["cmap_dim"] or c4, c4, "D's cmap_dim")
    _require(block["activation"], "lrelu", "D activation")
    _require(epilogue["activation"], "lrelu", "D epilogue activation")
    _check_filter(block["resample_filter"])
    if arch.c_dim:
        _check_mapping(mapping, c4, "D mapping")
        _require(mapping["num_layers"], 8, "D mapping num_layers")
    return dataclasses.replace(arch, d_architecture=top["architecture"],
                               mbstd_group_size=epilogue["mbstd_group_size"] or 4,
                               mbstd_num_channels=epilogue["mbstd_num_channels"])


def _official_name(path: tuple[str, ...], discriminator: bool) -> str:
    """The official module path of a stylejax variable: the same names, 'kernel' for
    'weight', and D's 4x4 epilogue layers under 'b4'."""
    names = ["weight" if p == "kernel" else p for p in path]
    if discriminator and names[0] in ("conv", "fc", "out", "fromrgb"):
        names.insert(0, "b4")
    return ".".join(names)


def _to_stylejax_layout(name: str, tensor: np.ndarray) -> np.ndarray:
    """OIHW convolutions to HWIO, [out, in] dense weights to [in, out], the CHW constant to HWC,
    and D's NCHW-flattened fc input to NHWC order."""
    if tensor.ndim == 4:
        return tensor.transpose(2, 3, 1, 0)
    if name.endswith(".const"):
        return tensor.transpose(1, 2, 0)
    if name == "b4.fc.weight" and tensor.ndim == 2 and tensor.shape[1] % 16 == 0:
        out, flat = tensor.shape
        return tensor.reshape(out, flat // 16, 4, 4).transpose(2, 3, 1, 0).reshape(flat, out)
    if name.endswith(".weight") and tensor.ndim == 2:
        return tensor.T
    return tensor


def convert_variables(shapes: dict, tensors: dict[str, np.ndarray], used: set[str],
                      discriminator: bool = False) -> dict:
    """Variables shaped like `shapes` (a flax variable tree of ShapeDtypeStructs, collection
    names on top) from the official tensors; the names taken are added to `used`."""
    out = {}
    for path, spec in traverse_util.flatten_dict(shapes).items():
        name = _official_name(path[1:], discriminator)
        if name not in tensors:
            raise _unsupported(f"it has no tensor {name!r}, which this architecture needs")
        tensor = np.asarray(tensors[name])
        if tensor.dtype.kind != "f":
            raise NetworkFileError(f"tensor {name!r} has dtype {tensor.dtype}, not a float")
        value = _to_stylejax_layout(name, tensor)
        if value.shape != spec.shape:
            raise _unsupported(f"tensor {name!r} has shape {tensor.shape}, which does not fit "
                               f"this architecture's {spec.shape}")
        out[path] = jnp.asarray(value, jnp.float32)
        used.add(name)
    return traverse_util.unflatten_dict(out)


def check_all_used(tensors: dict[str, np.ndarray], used: set[str], network: str) -> None:
    """Every official tensor was taken, apart from the fixed resampling filters (checked to be
    the default one)."""
    default = np.outer(DEFAULT_FILTER, DEFAULT_FILTER) / np.sum(DEFAULT_FILTER) ** 2
    for name, tensor in tensors.items():
        if name.endswith("resample_filter"):
            if tensor.shape != default.shape or not np.allclose(tensor, default):
                raise _unsupported(f"{network}'s {name} is not the [1, 3, 3, 1] filter")
        elif name not in used:
            raise _unsupported(f"{network} has a tensor {name!r} that stylejax's networks lack "
                               "(another architecture, such as StyleGAN3)")


def generator_variables(arch: Architecture, tensors: dict[str, np.ndarray], network: str) -> dict:
    """G's flax variables ({'params', 'stats', 'noise_consts'}) from its official tensors."""
    G = arch.generator()
    c = jnp.zeros((1, G.c_dim)) if G.c_dim else None
    shapes = jax.eval_shape(lambda key: G.init({"params": key, "noise": key},
                                               jnp.zeros((1, G.z_dim)), c), jax.random.key(0))
    used: set[str] = set()
    variables = convert_variables(dict(shapes), tensors, used)
    check_all_used(tensors, used, network)
    variables.setdefault("noise_consts", {})
    return variables


def discriminator_params(arch: Architecture, tensors: dict[str, np.ndarray]) -> dict:
    """D's flax params from its official tensors."""
    D = arch.discriminator()
    c = jnp.zeros((1, D.c_dim)) if D.c_dim else None
    img = jnp.zeros((1, D.resolution, D.resolution, D.img_channels))
    shapes = jax.eval_shape(lambda key: D.init(key, img, c), jax.random.key(0))
    used: set[str] = set()
    params = convert_variables(dict(shapes), tensors, used, discriminator=True)["params"]
    check_all_used(tensors, used, "D")
    return params
