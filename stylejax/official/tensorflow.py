"""The TensorFlow StyleGAN2 release's networks, renamed into stylegan2-ada-pytorch's form.

The facts (kwarg names and defaults, variable names, layouts, the flipped up-sampling kernels,
the affine bias stored minus one) are those of stylegan2-ada-pytorch's legacy.py; the code is
stylejax's. Each function returns the PyTorch constructor kwargs and the tensors by PyTorch name,
in PyTorch layouts, for stylejax.official.convert.
"""

import dataclasses
import re

import numpy as np

from stylejax.errors import NetworkFileError
from stylejax.official.convert import SUPPORTED, Architecture
from stylejax.official.unpickle import TFNetwork

# TF kwargs that change nothing stylejax builds (sampling defaults, the graph's structure).
TF_IGNORED = {"truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure",
              "dlatent_avg_beta", "is_template_graph", "components", "num_fp16_res"}


def _state(net: TFNetwork, min_version: int = 4) -> dict:
    state = net.state
    if not isinstance(state.get("version"), int) or state["version"] < min_version:
        raise NetworkFileError(f"TensorFlow network format version {state.get('version')!r} is too "
                               f"old (these pickles have {min_version} or later); " + SUPPORTED)
    return state


def _variables(net: TFNetwork, prefix: str = "", min_version: int = 4) -> dict[str, np.ndarray]:
    """Every variable of the network and its components, by '/'-joined name."""
    state = _state(net, min_version)
    out = {}
    for item in state.get("variables", []):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], np.ndarray | np.generic)):  # scalars (lod) as numpy scalars
            raise NetworkFileError("a TensorFlow network variable that is not (name, array)")
        out[prefix + item[0]] = np.asarray(item[1])
    for name, component in (state.get("components") or {}).items():
        if not isinstance(component, TFNetwork):
            raise NetworkFileError(f"TensorFlow component {name!r} is not a network")
        out.update(_variables(component, f"{prefix}{name}/", min_version))
    return out


def _kwargs(net: TFNetwork, known: dict[str, str]) -> dict:
    """TF static kwargs -> {pytorch name: value} through `known` (tf name -> pytorch name)."""
    kwargs = dict(_state(net).get("static_kwargs") or {})
    unknown = sorted(set(kwargs) - set(known) - TF_IGNORED)
    if unknown:
        raise NetworkFileError(f"unsupported network: TensorFlow option {unknown[0]!r}; {SUPPORTED}")
    return {known[k]: v for k, v in kwargs.items() if k in known and v is not None}


def _oihw(weight: np.ndarray, flip: bool = False) -> np.ndarray:
    """TF HWIO conv weights as PyTorch OIHW; the up/down-sampling convs of TF run flipped."""
    return (weight[::-1, ::-1] if flip else weight).transpose(3, 2, 0, 1)


def _rename(variables: dict[str, np.ndarray], rules) -> dict[str, np.ndarray]:
    """Applies the first matching (pattern, name template, transform) rule to each variable;
    variables no rule matches are returned under their own names, for convert to refuse."""
    out = {}
    for name, value in variables.items():
        for pattern, template, transform in rules:
            match = re.fullmatch(pattern, name)
            if match:
                if template is not None:
                    out[template(*match.groups())] = transform(value)
                break
        else:
            out[name] = value
    return out


def _layer(res: str, index: str) -> str:
    return f"synthesis.b{res}.conv{index}"


def _noise_layer(k: str) -> str:
    """TF noise input k -> its layer: 0 is the 4x4 conv, then two per resolution."""
    k = int(k)
    return "synthesis.b4.conv1" if k == 0 else _layer(str(2 ** ((k + 5) // 2)), str((k + 1) % 2))


def _identity(x):
    return x


def _transposed(x):
    return x.T


def _affine_bias(x):
    return x + 1  # TF stores the style bias minus its initial 1


G_KWARGS = {"latent_size": "z_dim", "label_size": "c_dim", "dlatent_size": "w_dim",
            "resolution": "img_resolution", "num_channels": "img_channels",
            "mapping_layers": "mapping.num_layers", "label_fmaps": "mapping.embed_features",
            "mapping_fmaps": "mapping.layer_features", "mapping_nonlinearity": "mapping.activation",
            "mapping_lrmul": "mapping.lr_multiplier", "w_avg_beta": "mapping.w_avg_beta",
            "fmap_base": "synthesis.channel_base", "fmap_max": "synthesis.channel_max",
            "conv_clamp": "synthesis.conv_clamp", "architecture": "synthesis.architecture",
            "resample_kernel": "synthesis.resample_filter", "use_noise": "synthesis.use_noise",
            "nonlinearity": "synthesis.activation"}

G_RULES = [
    (r"dlatent_avg", lambda: "mapping.w_avg", _identity),
    (r"mapping/LabelEmbed/weight", lambda: "mapping.embed.weight", _transposed),
    (r"mapping/LabelEmbed/bias", lambda: "mapping.embed.bias", _identity),
    (r"mapping/Dense(\d+)/weight", lambda i: f"mapping.fc{i}.weight", _transposed),
    (r"mapping/Dense(\d+)/bias", lambda i: f"mapping.fc{i}.bias", _identity),
    (r"synthesis/4x4/Const/const", lambda: "synthesis.b4.const", lambda x: x[0]),
    (r"synthesis/noise(\d+)", lambda k: f"{_noise_layer(k)}.noise_const", lambda x: x[0, 0]),
    (r"synthesis/4x4/Conv/weight", lambda: "synthesis.b4.conv1.weight", _oihw),
    (r"synthesis/4x4/Conv/(bias|noise_strength)", lambda p: f"synthesis.b4.conv1.{p}", _identity),
    (r"synthesis/4x4/Conv/mod_weight", lambda: "synthesis.b4.conv1.affine.weight", _transposed),
    (r"synthesis/4x4/Conv/mod_bias", lambda: "synthesis.b4.conv1.affine.bias", _affine_bias),
    (r"synthesis/(\d+)x\d+/Conv0_up/weight", lambda r: f"{_layer(r, 0)}.weight",
     lambda x: _oihw(x, flip=True)),
    (r"synthesis/(\d+)x\d+/Conv(\d)(?:_up)?/weight", lambda r, i: f"{_layer(r, i)}.weight", _oihw),
    (r"synthesis/(\d+)x\d+/Conv(\d)(?:_up)?/(bias|noise_strength)",
     lambda r, i, p: f"{_layer(r, i)}.{p}", _identity),
    (r"synthesis/(\d+)x\d+/Conv(\d)(?:_up)?/mod_weight",
     lambda r, i: f"{_layer(r, i)}.affine.weight", _transposed),
    (r"synthesis/(\d+)x\d+/Conv(\d)(?:_up)?/mod_bias",
     lambda r, i: f"{_layer(r, i)}.affine.bias", _affine_bias),
    (r"synthesis/(\d+)x\d+/ToRGB/weight", lambda r: f"synthesis.b{r}.torgb.weight", _oihw),
    (r"synthesis/(\d+)x\d+/ToRGB/bias", lambda r: f"synthesis.b{r}.torgb.bias", _identity),
    (r"synthesis/(\d+)x\d+/ToRGB/mod_weight", lambda r: f"synthesis.b{r}.torgb.affine.weight",
     _transposed),
    (r"synthesis/(\d+)x\d+/ToRGB/mod_bias", lambda r: f"synthesis.b{r}.torgb.affine.bias",
     _affine_bias),
    (r"synthesis/(\d+)x\d+/Skip/weight", lambda r: f"synthesis.b{r}.skip.weight",
     lambda x: _oihw(x, flip=True)),
    (r"(?:synthesis/)?lod", None, None),  # progressive-growing state, unused by StyleGAN2
]

D_KWARGS = {"label_size": "c_dim", "resolution": "img_resolution", "num_channels": "img_channels",
            "architecture": "architecture", "fmap_base": "channel_base", "fmap_max": "channel_max",
            "conv_clamp": "conv_clamp", "mapping_fmaps": "cmap_dim",
            "nonlinearity": "block.activation", "resample_kernel": "block.resample_filter",
            "freeze_layers": "block.freeze_layers", "mapping_layers": "mapping.num_layers",
            "mapping_lrmul": "mapping.lr_multiplier", "mbstd_group_size": "epilogue.mbstd_group_size",
            "mbstd_num_features": "epilogue.mbstd_num_channels"}

D_RULES = [
    (r"(\d+)x\d+/FromRGB/weight", lambda r: f"b{r}.fromrgb.weight", _oihw),
    (r"(\d+)x\d+/FromRGB/bias", lambda r: f"b{r}.fromrgb.bias", _identity),
    (r"(\d+)x\d+/Conv(\d)(?:_down)?/weight", lambda r, i: f"b{r}.conv{i}.weight", _oihw),
    (r"(\d+)x\d+/Conv(\d)(?:_down)?/bias", lambda r, i: f"b{r}.conv{i}.bias", _identity),
    (r"(\d+)x\d+/Skip/weight", lambda r: f"b{r}.skip.weight", _oihw),
    (r"4x4/Conv/weight", lambda: "b4.conv.weight", _oihw),
    (r"4x4/Conv/bias", lambda: "b4.conv.bias", _identity),
    (r"4x4/Dense0/weight", lambda: "b4.fc.weight", _transposed),
    (r"4x4/Dense0/bias", lambda: "b4.fc.bias", _identity),
    (r"Output/weight", lambda: "b4.out.weight", _transposed),
    (r"Output/bias", lambda: "b4.out.bias", _identity),
    (r"LabelEmbed/weight", lambda: "mapping.embed.weight", _transposed),
    (r"LabelEmbed/bias", lambda: "mapping.embed.bias", _identity),
    (r"Mapping(\d+)/weight", lambda i: f"mapping.fc{i}.weight", _transposed),
    (r"Mapping(\d+)/bias", lambda i: f"mapping.fc{i}.bias", _identity),
    (r"lod", None, None),
]


def _nest(flat: dict, groups: tuple[str, ...]) -> dict:
    """{'mapping.num_layers': 2} -> {'mapping_kwargs': {'num_layers': 2}}."""
    out = {f"{g}_kwargs": {} for g in groups}
    for key, value in flat.items():
        group, _, name = key.rpartition(".")
        (out[f"{group}_kwargs"] if group else out)[name] = value
    return out


def _check_progressive(variables: dict) -> None:
    if any("_lod" in name for name in variables):  # ToRGB_lod1, FromRGB_lod0, ...
        raise NetworkFileError("unsupported network: a progressive-growing StyleGAN2 (configs a-d); "
                               + SUPPORTED)


def tf_generator(net: TFNetwork) -> tuple[dict, dict[str, np.ndarray]]:
    """A TF G or Gs as (PyTorch Generator kwargs, tensors)."""
    flat = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 1024, "img_channels": 3,
            "synthesis.channel_base": 16384, **_kwargs(net, G_KWARGS)}
    flat["synthesis.channel_base"] *= 2  # TF's fmap_base is half the PyTorch channel_base
    variables = _variables(net)
    _check_progressive(variables)
    return _nest(flat, ("mapping", "synthesis")), _rename(variables, G_RULES)


def tf_discriminator(net: TFNetwork) -> tuple[dict, dict[str, np.ndarray]]:
    """A TF D as (PyTorch Discriminator kwargs, tensors)."""
    flat = {"c_dim": 0, "img_resolution": 1024, "img_channels": 3, "channel_base": 16384,
            **_kwargs(net, D_KWARGS)}
    flat["channel_base"] *= 2
    variables = _variables(net)
    _check_progressive(variables)
    return _nest(flat, ("block", "mapping", "epilogue")), _rename(variables, D_RULES)


# The TensorFlow StyleGAN (2018) release: networks_stylegan.py's G_style and D_basic, pickled by
# a dnnlib of format version 2 or 3, renamed to stylejax.models.stylegan1's variables.
STYLEGAN1_G, STYLEGAN1_D = "G_style", "D_basic"
# Their kwargs that shape the networks, with the values stylejax builds (None: any value is
# read into the Architecture). The official functions ignore every other kwarg, and so does this.
STYLEGAN1_G_KWARGS = {
    "latent_size": None, "dlatent_size": None, "resolution": None, "num_channels": None,
    "mapping_layers": None, "mapping_fmaps": None, "fmap_base": None, "fmap_max": None,
    "use_noise": None, "label_size": 0, "mapping_lrmul": 0.01, "mapping_nonlinearity": "lrelu",
    "nonlinearity": "lrelu", "use_wscale": True, "normalize_latents": True, "fmap_decay": 1.0,
    "use_styles": True, "const_input_layer": True, "use_pixel_norm": False, "use_instance_norm": True,
    "fused_scale": "auto", "blur_filter": [1, 2, 1], "dlatent_avg_beta": 0.995}
STYLEGAN1_D_KWARGS = {
    "resolution": None, "num_channels": None, "fmap_base": None, "fmap_max": None,
    "mbstd_group_size": None, "mbstd_num_features": None, "label_size": 0, "fmap_decay": 1.0,
    "nonlinearity": "lrelu", "use_wscale": True, "fused_scale": "auto", "blur_filter": [1, 2, 1]}
STYLEGAN1_DEFAULTS = {"latent_size": 512, "dlatent_size": 512, "resolution": 1024, "num_channels": 3,
                      "mapping_layers": 8, "mapping_fmaps": 512, "fmap_base": 8192, "fmap_max": 512,
                      "use_noise": True, "mbstd_group_size": 4, "mbstd_num_features": 1}


def is_stylegan1(net: TFNetwork) -> bool:
    return str(net.state.get("build_func_name")).rpartition(".")[2] in (STYLEGAN1_G, STYLEGAN1_D)


def _stylegan1_kwargs(net: TFNetwork, shaping: dict, build_func: str) -> dict:
    """The kwargs that shape the network (defaults filled in); a value stylejax does not build
    is refused."""
    state = _state(net, min_version=2)
    if str(state.get("build_func_name")).rpartition(".")[2] != build_func:
        raise NetworkFileError(f"a StyleGAN network built by {state.get('build_func_name')!r} where "
                               f"{build_func} was expected; " + SUPPORTED)
    kwargs = dict(state.get("static_kwargs") or {})
    out = {}
    for key, expected in shaping.items():
        value = kwargs.get(key, STYLEGAN1_DEFAULTS.get(key, expected))
        if expected is not None and value != expected and not (
                isinstance(expected, list) and list(np.asarray(value, float)) == expected):
            raise NetworkFileError(f"unsupported network: StyleGAN option {key}={value!r} "
                                   f"(stylejax builds {expected!r}); {SUPPORTED}")
        out[key] = value
    return out


def _stylegan1_variables(net: TFNetwork) -> dict[str, np.ndarray]:
    variables = _variables(net, min_version=2)
    for name, value in variables.items():
        if re.fullmatch(r"(?:synthesis/)?lod", name) and np.any(value != 0):
            raise NetworkFileError(f"its {name} is {float(value)}: a snapshot taken while growing; "
                                   "stylejax reads StyleGAN networks at full resolution (lod 0)")
    return variables


def _stylegan1_layer(res: str, layer: str) -> str:
    index = {"Const": 0, "Conv": 1, "Conv0_up": 0, "Conv1": 1}[layer]
    return f"synthesis.b{res}_conv{index}"


def _nchw_flattened(x: np.ndarray) -> np.ndarray:
    """D's Dense0 after the 4x4 conv: TF flattens NCHW, stylejax NHWC; as [out, in]."""
    flat, out = x.shape
    return x.reshape(flat // 16, 4, 4, out).transpose(1, 2, 0, 3).reshape(flat, out).T


def _stylegan1_g_rules(top: int) -> list:
    layer = r"synthesis/(\d+)x\d+/(Const|Conv|Conv0_up|Conv1)"
    return [
        (r"dlatent_avg", lambda: "mapping.w_avg", _identity),
        (r"mapping/Dense(\d+)/weight", lambda i: f"mapping.fc{i}.weight", _transposed),
        (r"mapping/Dense(\d+)/bias", lambda i: f"mapping.fc{i}.bias", _identity),
        (r"synthesis/4x4/Const/const", lambda: "synthesis.const", lambda x: x[0]),
        (r"synthesis/noise(\d+)", lambda k: f"synthesis.b{2 ** (int(k) // 2 + 2)}_conv{int(k) % 2}"
         ".noise_const", lambda x: x[0, 0]),
        (layer + "/weight", lambda r, n: f"{_stylegan1_layer(r, n)}.conv.weight", _oihw),
        (layer + "/Noise/weight", lambda r, n: f"{_stylegan1_layer(r, n)}.noise_strength", _identity),
        (layer + "/bias", lambda r, n: f"{_stylegan1_layer(r, n)}.bias", _identity),
        (layer + "/StyleMod/weight", lambda r, n: f"{_stylegan1_layer(r, n)}.style.affine.weight",
         _transposed),
        (layer + "/StyleMod/bias", lambda r, n: f"{_stylegan1_layer(r, n)}.style.affine.bias",
         _identity),
        (r"synthesis/ToRGB_lod(\d+)/weight", lambda lod: f"synthesis.b{2 ** (top - int(lod))}_torgb"
         ".conv.weight", _oihw),
        (r"synthesis/ToRGB_lod(\d+)/bias", lambda lod: f"synthesis.b{2 ** (top - int(lod))}_torgb"
         ".bias", _identity),
        (r"(?:synthesis/)?lod", None, None),  # checked to be 0
    ]


def _stylegan1_d_rules(top: int) -> list:
    return [
        (r"FromRGB_lod(\d+)/weight", lambda lod: f"b{2 ** (top - int(lod))}_fromrgb.conv.weight",
         _oihw),
        (r"FromRGB_lod(\d+)/bias", lambda lod: f"b{2 ** (top - int(lod))}_fromrgb.bias", _identity),
        (r"(\d+)x\d+/Conv0/weight", lambda r: f"b{r}.conv0.weight", _oihw),
        (r"(\d+)x\d+/Conv0/bias", lambda r: f"b{r}.bias0", _identity),
        (r"(\d+)x\d+/Conv1_down/weight", lambda r: f"b{r}.conv1.weight", _oihw),
        (r"(\d+)x\d+/Conv1_down/bias", lambda r: f"b{r}.bias1", _identity),
        (r"4x4/Conv/weight", lambda: "b4_conv.weight", _oihw),
        (r"4x4/Conv/bias", lambda: "b4_conv_bias", _identity),
        (r"4x4/Dense0/weight", lambda: "b4_fc.weight", _nchw_flattened),
        (r"4x4/Dense0/bias", lambda: "b4_fc.bias", _identity),
        (r"4x4/Dense1/weight", lambda: "b4_out.weight", _transposed),
        (r"4x4/Dense1/bias", lambda: "b4_out.bias", _identity),
        (r"lod", None, None),
    ]


def stylegan1_generator(net: TFNetwork) -> tuple[Architecture, dict[str, np.ndarray]]:
    """A StyleGAN G or Gs (G_style) as (its Architecture, tensors by stylejax name)."""
    k = _stylegan1_kwargs(net, STYLEGAN1_G_KWARGS, STYLEGAN1_G)
    arch = Architecture(
        resolution=k["resolution"], img_channels=k["num_channels"], c_dim=0, z_dim=k["latent_size"],
        w_dim=k["dlatent_size"], mapping_layers=k["mapping_layers"],
        channel_base=2 * k["fmap_base"], channel_max=k["fmap_max"], g_architecture="skip",
        conv_clamp=None, use_noise=bool(k["use_noise"]), generation="stylegan1")
    if k["mapping_fmaps"] != arch.w_dim:
        raise NetworkFileError(f"unsupported network: StyleGAN mapping_fmaps {k['mapping_fmaps']} "
                               f"differs from dlatent_size {arch.w_dim}; {SUPPORTED}")
    top = arch.resolution.bit_length() - 1
    return arch, _rename(_stylegan1_variables(net), _stylegan1_g_rules(top))


def stylegan1_discriminator(net: TFNetwork, arch: Architecture
                            ) -> tuple[Architecture, dict[str, np.ndarray]]:
    """A StyleGAN D (D_basic) as (`arch` with its minibatch-stddev settings, tensors)."""
    k = _stylegan1_kwargs(net, STYLEGAN1_D_KWARGS, STYLEGAN1_D)
    for key, value in (("resolution", arch.resolution), ("num_channels", arch.img_channels),
                       ("fmap_base", arch.channel_base // 2), ("fmap_max", arch.channel_max)):
        if k[key] != value:
            raise NetworkFileError(f"unsupported network: D's {key} {k[key]!r} differs from G's "
                                   f"{value!r}; {SUPPORTED}")
    group = k["mbstd_group_size"]  # the official layer is off for groups of 0 or 1
    arch = dataclasses.replace(arch, mbstd_group_size=max(group, 1),
                               mbstd_num_channels=k["mbstd_num_features"] if group > 1 else 0)
    top = arch.resolution.bit_length() - 1
    return arch, _rename(_stylegan1_variables(net), _stylegan1_d_rules(top))
