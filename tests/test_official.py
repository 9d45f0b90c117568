"""Official network files: the real stylegan2-ada-pytorch fixture against the official code's
outputs, the TensorFlow format, old module names, conditional networks and malicious files."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax.errors import NetworkFileError
from stylejax.models import mix_styles
from stylejax.official import load_network_file
from stylejax.official.files import _module_tensors
from stylejax.official.unpickle import read_network_pickle
from stylejax.sampling import z_from_seeds
from tests import official_files as of

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "official")
TINY = os.path.join(FIXTURES, "tiny.pkl")
TOLERANCE = 1e-4  # max |diff| / max |official|


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(os.path.join(FIXTURES, "tiny_expected.npz")))


@pytest.fixture(scope="module")
def tiny():
    return load_network_file(TINY)


def assert_official(actual, official) -> None:
    actual = np.asarray(actual, np.float64)
    assert actual.shape == official.shape
    assert np.max(np.abs(actual - official)) / np.max(np.abs(official)) < TOLERANCE


def nchw(images) -> np.ndarray:
    return np.transpose(np.asarray(images), (0, 3, 1, 2))


def check_generator(net, variables, expected, prefix: str) -> None:
    G = net.architecture.generator()
    z = expected["z"]
    for psi in ("1", "0.7"):
        ws = G.apply(variables, z, truncation_psi=float(psi), method=G.map_latents)
        assert_official(ws, expected[f"{prefix}/ws_psi{psi}"])
        images = G.apply(variables, ws, "const", method=G.synthesize)
        assert_official(nchw(images), expected[f"{prefix}/img_psi{psi}_const"])
    images = G.apply(variables, z, noise_mode="none")
    assert_official(nchw(images), expected[f"{prefix}/img_psi1_none"])


def check_discriminator(net, expected) -> None:
    D = net.architecture.discriminator()
    images = np.transpose(expected["G_ema/img_psi1_const"], (0, 2, 3, 1))
    assert_official(D.apply(net.D, images), expected["D/logits"])


def test_seeds_draw_the_official_latents(expected):
    np.testing.assert_array_equal(z_from_seeds(expected["seeds"], 128), expected["z"])


def test_snapshot_sizes_equal_the_official_networks(tiny, expected):
    count = lambda tree: sum(x.size for x in jax.tree_util.tree_leaves(tree))  # noqa: E731
    assert count(tiny.G_ema["params"]) == count(tiny.G["params"]) == expected["meta/params_G"]
    assert count(tiny.D["params"]) == expected["meta/params_D"]
    assert tiny.architecture.generator().num_ws == expected["meta/num_ws"]
    assert tiny.augment_p == pytest.approx(0.3)
    arch = tiny.architecture
    assert (arch.resolution, arch.z_dim, arch.mapping_layers, arch.channel_base, arch.channel_max,
            arch.conv_clamp, arch.g_architecture, arch.d_architecture) == (
        32, 128, 2, 2048, 64, 256.0, "skip", "resnet")


@pytest.mark.parametrize("prefix", ["G_ema", "G"])
def test_snapshot_generators_equal_the_official_outputs(tiny, expected, prefix):
    check_generator(tiny, getattr(tiny, prefix), expected, prefix)


def test_snapshot_discriminator_equals_the_official_logits(tiny, expected):
    check_discriminator(tiny, expected)


def test_style_mixing_equals_the_official_figure_cell(tiny, expected):
    """Row seed 0 with ws 0-3 from column seed 1, psi 0.7, constant noise."""
    G = tiny.architecture.generator()
    ws = G.apply(tiny.G_ema, z_from_seeds([0, 1], G.z_dim), truncation_psi=0.7, method=G.map_latents)
    mixed = mix_styles(ws[1:2], ws[0:1], 4)
    image = G.apply(tiny.G_ema, mixed, "const", method=G.synthesize)
    assert_official(nchw(image), expected["G_ema/mix_row0_col1_ws0-3"])


# --- the TensorFlow release's format, written from the fixture's tensors --------------------------

def official_tensors(key: str) -> dict[str, np.ndarray]:
    return _module_tensors(read_network_pickle(TINY)[key])


def to_tf_generator(t: dict[str, np.ndarray]) -> dict:
    """stylegan2-ada-pytorch names and layouts -> the TF release's (the inverse of legacy.py)."""
    hwio = lambda w: w.transpose(2, 3, 1, 0)  # noqa: E731
    mapping = {f"Dense{i}/{p}": (t[f"mapping.fc{i}.weight"].T if p == "weight" else t[f"mapping.fc{i}.bias"])
               for i in range(2) for p in ("weight", "bias")}
    synthesis = {"4x4/Const/const": t["synthesis.b4.const"][None]}
    layers = [("4x4/Conv", "synthesis.b4.conv1", False)]
    for r in (8, 16, 32):
        layers += [(f"{r}x{r}/Conv0_up", f"synthesis.b{r}.conv0", True),
                   (f"{r}x{r}/Conv1", f"synthesis.b{r}.conv1", False)]
    for k, (tf, pt, flip) in enumerate(layers):
        w = hwio(t[f"{pt}.weight"])
        synthesis.update({f"{tf}/weight": w[::-1, ::-1] if flip else w, f"{tf}/bias": t[f"{pt}.bias"],
                          f"{tf}/noise_strength": t[f"{pt}.noise_strength"],
                          f"{tf}/mod_weight": t[f"{pt}.affine.weight"].T,
                          f"{tf}/mod_bias": t[f"{pt}.affine.bias"] - 1,
                          f"noise{k}": t[f"{pt}.noise_const"][None, None]})
    for r in (4, 8, 16, 32):
        pt = f"synthesis.b{r}.torgb"
        synthesis.update({f"{r}x{r}/ToRGB/weight": hwio(t[f"{pt}.weight"]),
                          f"{r}x{r}/ToRGB/bias": t[f"{pt}.bias"],
                          f"{r}x{r}/ToRGB/mod_weight": t[f"{pt}.affine.weight"].T,
                          f"{r}x{r}/ToRGB/mod_bias": t[f"{pt}.affine.bias"] - 1})
    kwargs = dict(latent_size=128, dlatent_size=128, resolution=32, num_channels=3, mapping_layers=2,
                  fmap_base=1024, fmap_max=64, conv_clamp=256, num_fp16_res=2, truncation_psi=0.5)
    return of.tf_network("G", kwargs, {"dlatent_avg": t["mapping.w_avg"], "lod": np.float32(0)},
                         dict(mapping=of.tf_network("G_mapping", {}, mapping),
                              synthesis=of.tf_network("G_synthesis", {}, synthesis)))


def to_tf_discriminator(t: dict[str, np.ndarray]):
    hwio = lambda w: w.transpose(2, 3, 1, 0)  # noqa: E731
    v = {"32x32/FromRGB/weight": hwio(t["b32.fromrgb.weight"]), "32x32/FromRGB/bias": t["b32.fromrgb.bias"]}
    for r in (32, 16, 8):
        v.update({f"{r}x{r}/Conv0/weight": hwio(t[f"b{r}.conv0.weight"]),
                  f"{r}x{r}/Conv0/bias": t[f"b{r}.conv0.bias"],
                  f"{r}x{r}/Conv1_down/weight": hwio(t[f"b{r}.conv1.weight"]),
                  f"{r}x{r}/Conv1_down/bias": t[f"b{r}.conv1.bias"],
                  f"{r}x{r}/Skip/weight": hwio(t[f"b{r}.skip.weight"])})
    v.update({"4x4/Conv/weight": hwio(t["b4.conv.weight"]), "4x4/Conv/bias": t["b4.conv.bias"],
              "4x4/Dense0/weight": t["b4.fc.weight"].T, "4x4/Dense0/bias": t["b4.fc.bias"],
              "Output/weight": t["b4.out.weight"].T, "Output/bias": t["b4.out.bias"]})
    kwargs = dict(resolution=32, num_channels=3, fmap_base=1024, fmap_max=64, conv_clamp=256,
                  mbstd_group_size=4)
    return of.tf_network("D", kwargs, v)


@pytest.fixture(scope="module")
def tf_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tf") / "stylegan2-tiny-config-f.pkl"
    of.write(path, (to_tf_generator(official_tensors("G")), to_tf_discriminator(official_tensors("D")),
                    to_tf_generator(official_tensors("G_ema"))))
    return str(path)


def test_tensorflow_release_format_equals_the_official_outputs(tf_file, expected):
    net = load_network_file(tf_file)
    assert net.architecture == load_network_file(TINY).architecture
    check_generator(net, net.G_ema, expected, "G_ema")
    check_generator(net, net.G, expected, "G")
    check_discriminator(net, expected)


def test_tensorflow_gs_alone_is_a_generator(tmp_path, expected):
    path = tmp_path / "gs.pkl"
    of.write(path, to_tf_generator(official_tensors("G_ema")))
    net = load_network_file(str(path))
    assert net.G is None and net.D is None
    check_generator(net, net.G_ema, expected, "G_ema")


# --- stylegan2-ada-pytorch snapshots written here: old module names, conditional networks ---------

def snapshot(nets: dict, new_names: bool = True, module_src: str = "# source omitted\n", **extra):
    """{'G_ema': (class, kwargs, tensors), ...} as a snapshot dict."""
    return dict(training_set_kwargs=None, augment_pipe=None, **extra,
                **{k: of.torch_module(c, kw, t, new_names=new_names, module_src=module_src)
                   for k, (c, kw, t) in nets.items()})


def tiny_nets(keys=("G", "D", "G_ema")) -> dict:
    data = read_network_pickle(TINY)
    return {k: (data[k].class_name, data[k].state["_init_kwargs"], official_tensors(k)) for k in keys}


def test_old_module_names_read_the_same(tmp_path, expected):
    """numpy 1's numpy.core, torch 1.7-1.10's _rebuild_parameter and dnnlib.EasyDict; a numpy
    scalar among the kwargs."""
    nets = tiny_nets()
    for _, kwargs, _ in nets.values():
        kwargs["img_resolution"] = of.numpy_scalar(np.int64(32), new_names=False)
    path = tmp_path / "old.pkl"
    of.write(path, snapshot(nets, new_names=False))
    net = load_network_file(str(path))
    check_generator(net, net.G_ema, expected, "G_ema")
    check_discriminator(net, expected)


def to_official_tensors(variables: dict, discriminator: bool = False) -> dict[str, np.ndarray]:
    """stylejax variables in stylegan2-ada-pytorch names and layouts (for round trips)."""
    from flax import traverse_util

    out = {}
    for path, value in traverse_util.flatten_dict(variables).items():
        names = ["weight" if p == "kernel" else p for p in path[1:]]
        if discriminator and names[0] in ("conv", "fc", "out"):
            names.insert(0, "b4")
        name, value = ".".join(names), np.asarray(value)
        if value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)
        elif name.endswith(".const"):
            value = value.transpose(2, 0, 1)
        elif name == "b4.fc.weight":
            out_dim = value.shape[1]
            value = value.reshape(4, 4, -1, out_dim).transpose(3, 2, 0, 1).reshape(out_dim, -1)
        elif name.endswith(".weight") and value.ndim == 2:
            value = value.T
        out[name] = value
    return out


def test_conditional_snapshot_round_trip(tmp_path):
    """A conditional G and D (label embedding, D's projection mapping) written as an official
    snapshot read back to the same outputs."""
    from stylejax.models import Discriminator, Generator

    G = Generator(z_dim=16, c_dim=10, w_dim=16, resolution=8, channel_base=256, channel_max=32,
                  mapping_layers=2)
    D = Discriminator(c_dim=10, resolution=8, channel_base=256, channel_max=32, mbstd_group_size=2)
    z, c = jax.random.normal(jax.random.key(1), (4, 16)), jax.nn.one_hot(jnp.arange(4), 10)
    g_vars = G.init({"params": jax.random.key(2), "noise": jax.random.key(3)}, z, c)
    g_vars = {**g_vars, "stats": {"mapping": {"w_avg": jnp.linspace(-1, 1, 16)}}}
    d_vars = D.init(jax.random.key(4), jnp.zeros((4, 8, 8, 3)), c)
    g_kwargs = dict(z_dim=16, c_dim=10, w_dim=16, img_resolution=8, img_channels=3,
                    mapping_kwargs=dict(num_layers=2),
                    synthesis_kwargs=dict(channel_base=256, channel_max=32))
    d_kwargs = dict(c_dim=10, img_resolution=8, img_channels=3, channel_base=256, channel_max=32,
                    epilogue_kwargs=dict(mbstd_group_size=2))
    path = tmp_path / "conditional.pkl"
    of.write(path, snapshot({"G_ema": ("Generator", g_kwargs, to_official_tensors(g_vars)),
                             "D": ("Discriminator", d_kwargs, to_official_tensors(d_vars, True))}))
    net = load_network_file(str(path))
    assert net.architecture.c_dim == 10 and net.G is None
    np.testing.assert_allclose(net.architecture.generator().apply(net.G_ema, z, c, noise_mode="const"),
                               G.apply(g_vars, z, c, noise_mode="const"), atol=1e-6)
    np.testing.assert_allclose(net.architecture.discriminator().apply(net.D, jnp.ones((4, 8, 8, 3)), c),
                               D.apply(d_vars, jnp.ones((4, 8, 8, 3)), c), atol=1e-6)


# --- files that must be refused ----------------------------------------------------------------

def test_malicious_globals_are_refused_and_run_nothing(tmp_path):
    target = tmp_path / "pwned"
    for module, name, args in (("os", "system", (f"touch {target}",)),
                               ("builtins", "eval", (f"open({str(target)!r}, 'w')",)),
                               ("subprocess", "run", (["touch", str(target)],))):
        path = tmp_path / f"{module}.pkl"
        of.write(path, dict(G_ema=of.Call(of.Global(module, name), args)))
        with pytest.raises(NetworkFileError, match=rf"refused: it names the global {module}\.{name}"):
            load_network_file(str(path))
        assert not target.exists()


def test_persistence_source_is_never_executed(tmp_path, expected):
    target = tmp_path / "pwned"
    source = f"open({str(target)!r}, 'w').write('ran')\nimport os\nos.system('touch {target}')\n"
    path = tmp_path / "source.pkl"
    of.write(path, snapshot(tiny_nets(("G_ema",)), module_src=source))
    net = load_network_file(str(path))
    assert not target.exists()
    check_generator(net, net.G_ema, expected, "G_ema")


def test_a_tensor_reading_past_its_storage_is_refused(tmp_path):
    storage = of.Call(of.Global("torch.storage", "_load_from_bytes"),
                      (of._storage_bytes(np.zeros(4, np.float32)),))
    bad = of.Call(of.Global("torch._utils", "_rebuild_tensor_v2"), (storage, 2, (4,), (1,), False, {}))
    path = tmp_path / "oob.pkl"
    of.write(path, dict(G_ema=bad))
    with pytest.raises(NetworkFileError, match="reads past its storage"):
        load_network_file(str(path))


@pytest.mark.parametrize("content,message", [
    (b"not a pickle at all", "is not a readable network pickle"),
    (None, "is not a readable network pickle"),  # the fixture, truncated
    (of.dumps({"weights": [1, 2, 3]}), r"holds a dict with keys \['weights'\], not a network snapshot"),
    (of.dumps([1, 2]), "holds a list, not a network snapshot"),
])
def test_files_that_are_not_network_snapshots(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(open(TINY, "rb").read()[:100_000] if content is None else content)
    with pytest.raises(NetworkFileError, match=message):
        load_network_file(str(path))


def test_another_architecture_is_named(tmp_path):
    nets = tiny_nets(("G_ema",))
    nets["G_ema"][1]["synthesis_kwargs"]["magnitude_ema_beta"] = 0.999  # a StyleGAN3 option
    path = tmp_path / "sg3.pkl"
    of.write(path, snapshot(nets))
    with pytest.raises(NetworkFileError, match="unsupported network: G synthesis_kwargs has the "
                                               "option 'magnitude_ema_beta'"):
        load_network_file(str(path))
    nets = tiny_nets(("G_ema",))
    nets["G_ema"][2]["synthesis.input.freqs"] = np.zeros((4, 2), np.float32)
    of.write(path, snapshot(nets))
    with pytest.raises(NetworkFileError, match="has a tensor 'synthesis.input.freqs'"):
        load_network_file(str(path))


def test_a_size_stylejax_does_not_build_is_named(tmp_path):
    nets = tiny_nets(("G_ema",))
    nets["G_ema"][1]["img_resolution"] = 2048
    path = tmp_path / "huge.pkl"
    of.write(path, snapshot(nets))
    with pytest.raises(NetworkFileError, match=r"unsupported network: resolution must be a power of two "
                                               r"from 8 to 1024, got 2048; stylejax reads"):
        load_network_file(str(path))
