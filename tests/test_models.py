"""Generator and Discriminator: official parameter counts, styles, noise, dtypes, errors, and the
CPU-tuned convolution's networks against the reference's."""

import functools
import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax.models import Discriminator, Generator, mix_styles, num_ws_for, truncate
from stylejax.models.conv import conv2d
from stylejax.models.discriminator import minibatch_stddev
from stylejax.ops.cpu_conv import CpuConv2d

KEY = jax.random.PRNGKey(0)
SMALL = dict(resolution=32, channel_base=4096, channel_max=128)


def count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def abstract_variables(module, *args):
    return jax.eval_shape(lambda: module.init({"params": KEY, "noise": KEY}, *args))


@pytest.mark.parametrize("res,base,cmax,mapping,g_params,d_params", [
    (1024, 32768, 512, 8, 30_370_060, 29_012_513),
    (256, 16384, 512, 8, 24_767_458, 24_001_089),
    (32, 4096, 128, 2, 2_284_307, 1_346_305),
])
def test_parameter_counts_equal_official(res, base, cmax, mapping, g_params, d_params):
    G = Generator(resolution=res, channel_base=base, channel_max=cmax, mapping_layers=mapping)
    D = Discriminator(resolution=res, channel_base=base, channel_max=cmax)
    g_vars = abstract_variables(G, jnp.zeros((1, 512)))
    d_vars = abstract_variables(D, jnp.zeros((1, res, res, 3)))
    assert count(g_vars["params"]) == g_params
    assert count(d_vars["params"]) == d_params
    # Buffers are not trainable: w_avg and one fixed noise map per synthesis layer.
    assert count(g_vars["stats"]) == 512
    assert set(d_vars) == {"params"}


@pytest.mark.parametrize("res", [8, 16, 32, 64, 128, 256, 512, 1024])
def test_num_ws_is_two_log2_minus_two(res):
    expected = 2 * int(math.log2(res)) - 2
    G = Generator(resolution=res, channel_base=max(res, 512), channel_max=8, mapping_layers=1,
                  z_dim=8, w_dim=8)
    assert num_ws_for(res) == G.num_ws == expected
    ws = jax.eval_shape(lambda: G.init_with_output(KEY, jnp.zeros((2, 8)),
                                                   method=G.map_latents)[0])
    assert ws.shape == (2, expected, 8)
    # Synthesis consumes exactly num_ws styles: one fewer is an indexing error at trace time.
    variables = abstract_variables(G, jnp.zeros((1, 8)))
    img = jax.eval_shape(lambda v: G.apply(v, jnp.zeros((2, expected, 8)), noise_mode="none",
                                           method=G.synthesize), variables)
    assert img.shape == (2, res, res, 3)


@pytest.fixture(scope="module")
def small_g():
    G = Generator(mapping_layers=2, **SMALL)
    z = jax.random.normal(KEY, (4, 512))
    variables = G.init({"params": KEY, "noise": KEY}, z)
    w_avg = jax.random.normal(jax.random.PRNGKey(7), (512,))
    variables = {**variables, "stats": {"mapping": {"w_avg": w_avg}}}
    return G, variables, z


def test_truncation_identity_w_avg_and_cutoff(small_g):
    G, v, z = small_g
    ws = G.apply(v, z, method=G.map_latents)
    w_avg = v["stats"]["mapping"]["w_avg"]
    np.testing.assert_array_equal(G.apply(v, z, truncation_psi=1.0, method=G.map_latents), ws)
    np.testing.assert_allclose(G.apply(v, z, truncation_psi=0.0, method=G.map_latents),
                               jnp.broadcast_to(w_avg, ws.shape), rtol=1e-6, atol=1e-6)
    half = G.apply(v, z, truncation_psi=0.5, truncation_cutoff=4, method=G.map_latents)
    np.testing.assert_allclose(half[:, :4], w_avg + 0.5 * (ws[:, :4] - w_avg), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(half[:, 4:], ws[:, 4:])
    # psi and cutoff may be traced: one compiled program for every value.
    jitted = jax.jit(lambda psi, cut: truncate(ws, w_avg, psi, cut))
    np.testing.assert_allclose(jitted(0.5, 4), half, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jitted(1.0, 4), ws, rtol=1e-6, atol=1e-6)


def test_style_mixing_with_traced_cutoff(small_g):
    G, v, z = small_g
    ws = G.apply(v, z, method=G.map_latents)
    other = ws[::-1]
    traces = []
    mix = jax.jit(lambda *args: traces.append(args) or mix_styles(*args))
    for cutoff in range(G.num_ws + 1):
        mixed = mix(ws, other, jnp.int32(cutoff))
        np.testing.assert_array_equal(mixed[:, :cutoff], ws[:, :cutoff])
        np.testing.assert_array_equal(mixed[:, cutoff:], other[:, cutoff:])
    assert len(traces) == 1  # one trace, one compiled program, for every cutoff


def test_w_avg_tracks_batch_mean_with_beta(small_g):
    G, v, z = small_g
    ws, updated = G.apply(v, z, update_emas=True, mutable=["stats"], method=G.map_latents)
    old = v["stats"]["mapping"]["w_avg"]
    batch_mean = jnp.mean(ws[:, 0], axis=0)
    np.testing.assert_allclose(updated["stats"]["mapping"]["w_avg"],
                               0.995 * old + 0.005 * batch_mean, rtol=1e-5, atol=1e-6)
    # Without update_emas nothing changes.
    _, same = G.apply(v, z, mutable=["stats"], method=G.map_latents)
    np.testing.assert_array_equal(same["stats"]["mapping"]["w_avg"], old)


def unit_noise_strength(variables, only=None):
    """Noise strength 1 (it starts at 0) in every layer, or only in the layer path `only`."""
    def set_strength(path, x):
        keys = tuple(p.key for p in path)
        hit = keys[-1] == "noise_strength" and (only is None or keys[-3:-1] == only)
        return jnp.ones_like(x) if hit else x
    return {**variables,
            "params": jax.tree_util.tree_map_with_path(set_strength, variables["params"])}


def test_noise_modes(small_g):
    G, v, z = small_g
    v = unit_noise_strength(v)  # strength starts at 0; make the noise visible
    ws = G.apply(v, z, method=G.map_latents)

    def synth(mode, key=KEY):
        return G.apply(v, ws, noise_mode=mode, rngs={"noise": key}, method=G.synthesize)

    np.testing.assert_array_equal(synth("const"), synth("const", jax.random.PRNGKey(5)))
    np.testing.assert_array_equal(synth("none"), synth("none", jax.random.PRNGKey(5)))
    assert not np.allclose(synth("random"), synth("random", jax.random.PRNGKey(5)))
    assert not np.allclose(synth("const"), synth("none"))


def test_generator_without_noise_inputs_is_the_noise_free_generator(small_g):
    G, v, z = small_g
    v = unit_noise_strength(v)  # so that a noise input left in would show
    quiet = Generator(mapping_layers=2, use_noise=False, **SMALL)
    quiet_shapes = abstract_variables(quiet, z)
    assert set(quiet_shapes) == {"params", "stats"}  # no constant noise either
    num_layers = 7  # 4x4: one conv; 8, 16, 32: two each
    assert count(quiet_shapes["params"]) == 2_284_307 - num_layers  # one noise strength per layer
    flat = flax.traverse_util.flatten_dict(v["params"])
    params = flax.traverse_util.unflatten_dict({k: x for k, x in flat.items() if k[-1] != "noise_strength"})
    expected = G.apply(v, z, noise_mode="none")
    for mode, key in (("random", KEY), ("random", jax.random.PRNGKey(5)), ("const", KEY)):
        image = quiet.apply({"params": params, "stats": v["stats"]}, z, noise_mode=mode, rngs={"noise": key})
        np.testing.assert_array_equal(image, expected)


def test_random_noise_differs_between_layers(small_g):
    G, v, z = small_g
    ws = G.apply(v, z, method=G.map_latents)

    def pre_activation(y):  # undo the gain sqrt(2) and lrelu(0.2)
        y = np.asarray(y, np.float64) / math.sqrt(2)
        return np.where(y >= 0, y, y / 0.2)

    def added_noise(block, layer):
        """With noise in this layer alone, its output minus the noise-free one is its noise."""
        def output(mode):
            _, state = G.apply(unit_noise_strength(v, (block, layer)), ws, noise_mode=mode,
                               rngs={"noise": KEY}, method=G.synthesize,
                               capture_intermediates=lambda m, _: m.name == layer)
            return pre_activation(state["intermediates"]["synthesis"][block][layer]["__call__"][0])
        diff = output("random") - output("none")
        # One map per sample and pixel, shared by all channels, standard normal.
        np.testing.assert_allclose(diff, diff[..., :1].repeat(diff.shape[-1], -1), atol=1e-4)
        assert abs(diff.std() - 1) < 0.25
        return diff[..., 0].ravel()

    for block in ("b8", "b16", "b32"):
        corr = np.corrcoef(added_noise(block, "conv0"), added_noise(block, "conv1"))[0, 1]
        assert abs(corr) < 0.2, (block, corr)


def test_generator_output_at_32_for_several_batch_sizes(small_g):
    G, v, _ = small_g
    fwd = jax.jit(lambda v, z, k: G.apply(v, z, rngs={"noise": k}))
    for n in (1, 3, 8):
        z = jax.random.normal(jax.random.PRNGKey(n), (n, 512))
        img = fwd(v, z, KEY)
        assert img.shape == (n, 32, 32, 3) and img.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(img)))
        assert 0.1 < float(jnp.std(img)) < 10  # unit-scale signals at initialisation
        if n > 1:
            assert float(jnp.min(jnp.std(img, axis=0))) > 0  # different z, different images


def test_jitted_forward_at_256_on_cpu():
    G = Generator(resolution=256, channel_base=16384)
    D = Discriminator(resolution=256, channel_base=16384)
    z = jax.random.normal(KEY, (2, 512))
    g_vars = jax.jit(lambda: G.init({"params": KEY, "noise": KEY}, z))()
    img = jax.jit(lambda v, z: G.apply(v, z, rngs={"noise": KEY}))(g_vars, z)
    assert img.shape == (2, 256, 256, 3) and bool(jnp.all(jnp.isfinite(img)))
    d_vars = jax.jit(D.init)(KEY, img)
    logits = jax.jit(D.apply)(d_vars, img)
    assert logits.shape == (2, 1) and bool(jnp.all(jnp.isfinite(logits)))


def test_fused_and_shared_generators_agree(small_g):
    G, v, z = small_g
    fused = Generator(mapping_layers=2, modconv="fused", **SMALL)
    a = G.apply(v, z, noise_mode="const")
    b = fused.apply(v, z, noise_mode="const")
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_bfloat16_compute_keeps_float32_params(small_g):
    G, v, z = small_g
    G16 = Generator(mapping_layers=2, dtype=jnp.bfloat16, **SMALL)
    D = Discriminator(**SMALL)
    D16 = Discriminator(dtype=jnp.bfloat16, **SMALL)
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(
        jax.eval_shape(G16.init, {"params": KEY, "noise": KEY}, z)["params"]))
    img32 = jax.jit(functools.partial(G.apply, noise_mode="const"))(v, z)
    img16 = jax.jit(functools.partial(G16.apply, noise_mode="const"))(v, z)
    assert img16.dtype == jnp.float32
    assert float(jnp.mean(jnp.abs(img16 - img32))) < 0.05 * float(jnp.std(img32))
    dv = jax.jit(D.init)(KEY, img32)
    np.testing.assert_allclose(jax.jit(D16.apply)(dv, img32), jax.jit(D.apply)(dv, img32),
                               rtol=0.05, atol=0.05)


def test_conditional_networks_use_labels():
    G = Generator(c_dim=10, mapping_layers=2, **SMALL)
    D = Discriminator(c_dim=10, **SMALL)
    z = jax.random.normal(KEY, (4, 512))
    c = jax.nn.one_hot(jnp.array([0, 1, 2, 3]), 10)
    gv = G.init({"params": KEY, "noise": KEY}, z, c)
    img_a = G.apply(gv, z, c, noise_mode="const")
    img_b = G.apply(gv, z, c[::-1], noise_mode="const")
    assert not np.allclose(img_a, img_b)
    dv = D.init(KEY, img_a, c)
    assert "mapping" in dv["params"]
    assert not np.allclose(D.apply(dv, img_a, c), D.apply(dv, img_a, c[::-1]))
    with pytest.raises(ValueError, match="conditional"):
        G.apply(gv, z)


@pytest.mark.parametrize("batch,shards", [(8, 1), (16, 2), (3, 1)])
def test_minibatch_stddev_groups_as_official(batch, shards):
    """Within each shard's share of n, sample i is in group i mod (n / G), G = min(4, n)."""
    x = jax.random.normal(KEY, (batch, 4, 4, 6))
    out = minibatch_stddev(x, group_size=4, num_channels=2, num_shards=shards)
    assert out.shape == (batch, 4, 4, 8)
    xn = np.asarray(x, np.float64)
    share = batch // shards
    groups = share // min(4, share)
    for i in range(batch):
        start = i // share * share
        members = [start + j for j in range(share) if j % groups == (i - start) % groups]
        std = np.sqrt(xn[members].var(axis=0) + 1e-8)  # [4, 4, 6]
        for f in range(2):
            np.testing.assert_allclose(out[i, :, :, 6 + f], std[..., 3 * f:3 * f + 3].mean(), rtol=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(resolution=48), "power of two"),
    (dict(resolution=4), "power of two"),
    (dict(resolution=2048), "power of two"),
    (dict(resolution=32, channel_base=16), "zero channels"),
    (dict(resolution=32, channel_max=0), "channel_max"),
    (dict(resolution=32, modconv="grouped"), "unknown modconv form 'grouped'"),
])
def test_bad_generator_configuration_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Generator(**kwargs)


def test_bad_discriminator_configuration_is_refused():
    with pytest.raises(ValueError, match="power of two"):
        Discriminator(resolution=100)
    with pytest.raises(ValueError, match="mbstd_num_channels"):
        Discriminator(resolution=32, channel_base=4096, channel_max=128, mbstd_num_channels=3)


def test_networks_with_the_tuned_convolution_equal_the_reference():
    """model.impl changes speed, not results: with the CPU-tuned convolution, G's images and D's
    logits, G's loss gradient, a path-length-like and D's R1 penalty with their gradients (second
    order, as training takes them) equal the reference's within float32 rounding. The resnet G
    and D hold every kind of conv the architectures have; batch 16 at 16x16 has enough rows that
    the tuned 3x3 weight gradients sum batch chunks."""
    sizes = dict(resolution=16, channel_base=256, channel_max=16)

    def networks(stride1_conv):
        return (Generator(z_dim=16, w_dim=16, mapping_layers=2, architecture="resnet",
                          stride1_conv=stride1_conv, **sizes),
                Discriminator(architecture="resnet", stride1_conv=stride1_conv, **sizes))

    G, D = networks(conv2d)
    z = jax.random.normal(KEY, (16, 16))
    reals = jax.random.uniform(jax.random.PRNGKey(1), (16, 16, 16, 3), minval=-1)
    g_vars = unit_noise_strength(G.init({"params": KEY, "noise": KEY}, z))
    d_params = D.init(KEY, reals)["params"]
    probe = jax.random.normal(jax.random.PRNGKey(2), reals.shape)

    def results(G, D):
        def g_loss(g_params):
            images = G.apply({**g_vars, "params": g_params}, z, noise_mode="const")
            return jnp.sum(jax.nn.softplus(-D.apply({"params": d_params}, images))), images

        def path_length_like(g_params):
            variables = {**g_vars, "params": g_params}
            ws = G.apply(variables, z, method=G.map_latents)
            grad_ws = jax.grad(lambda ws: jnp.sum(
                G.apply(variables, ws, noise_mode="const", method=G.synthesize) * probe))(ws)
            return jnp.sum(jnp.square(grad_ws))

        def r1(d_params):
            grad_reals = jax.grad(lambda x: jnp.sum(D.apply({"params": d_params}, x)))(reals)
            return jnp.sum(jnp.square(grad_reals))

        (g_value, images), g_grad = jax.jit(jax.value_and_grad(g_loss, has_aux=True))(g_vars["params"])
        return dict(images=images, logits=D.apply({"params": d_params}, reals), g_value=g_value,
                    g_grad=g_grad, pl=jax.jit(jax.value_and_grad(path_length_like))(g_vars["params"]),
                    r1=jax.jit(jax.value_and_grad(r1))(d_params))

    reference, tuned = results(G, D), results(*networks(CpuConv2d(devices=1)))
    assert float(jnp.std(reference["images"])) > 0.1  # a real signal to compare
    for name, expected in reference.items():  # each error relative to the largest of its kind
        expected = [np.asarray(leaf, np.float64) for leaf in jax.tree_util.tree_leaves(expected)]
        scale = max(float(np.max(np.abs(leaf))) for leaf in expected)
        assert scale > 0, name
        for got, want in zip(jax.tree_util.tree_leaves(tuned[name]), expected, strict=True):
            assert float(np.max(np.abs(np.asarray(got, np.float64) - want))) / scale < 1e-5, name
