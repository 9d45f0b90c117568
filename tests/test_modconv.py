"""The two modulated-convolution forms against a per-sample loop reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax.models.modconv import modulated_conv2d
from stylejax.models.resample import setup_filter
from tests import reference as ref

RNG = np.random.default_rng(1)


def inputs(n=3, h=6, cin=4, cout=5, k=3):
    x = RNG.standard_normal((n, h, h, cin)).astype(np.float32)
    w = RNG.standard_normal((k, k, cin, cout)).astype(np.float32)
    s = (1 + 0.5 * RNG.standard_normal((n, cin))).astype(np.float32)
    return x, w, s


def run(form, x, w, s, demodulate=True, up=1):
    k = w.shape[0]
    return modulated_conv2d(x, w, s, demodulate=demodulate, up=up, padding=k // 2,
                            resample_filter=setup_filter(), form=form)


@pytest.mark.parametrize("form", ["fused", "shared"])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_forms_match_loop_reference(form, up, demodulate):
    x, w, s = inputs()
    got = np.asarray(run(form, jnp.asarray(x), jnp.asarray(w), jnp.asarray(s), demodulate, up))
    want = ref.modulated_conv(x, w, s, demodulate, up)
    assert got.shape == want.shape == (3, 6 * up, 6 * up, 5)
    rel = np.max(np.abs(got - want)) / np.max(np.abs(want))
    assert rel < 1e-5, rel


def test_one_by_one_without_demodulation_matches_reference():
    x, w, s = inputs(k=1)
    for form in ("fused", "shared"):
        got = np.asarray(run(form, x, w, s, demodulate=False))
        np.testing.assert_allclose(got, ref.modulated_conv(x, w, s, False), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("up", [1, 2])
def test_gradients_and_second_derivatives_of_forms_agree(up):
    x, w, s = (jnp.asarray(a) for a in inputs())
    probe = jnp.asarray(RNG.standard_normal((3, 6 * up, 6 * up, 5)).astype(np.float32))

    def loss(form):
        return lambda x, w, s: jnp.sum(run(form, x, w, s, up=up) * probe)

    def grad_norm(form):  # R1-style: a function of the input gradient, differentiated again
        g = jax.grad(loss(form))
        return lambda x, w, s: jnp.sum(jnp.square(g(x, w, s)))

    for fn in (loss, grad_norm):
        fused = jax.grad(fn("fused"), argnums=(0, 1, 2))(x, w, s)
        shared = jax.grad(fn("shared"), argnums=(0, 1, 2))(x, w, s)
        assert float(jnp.max(jnp.abs(shared[1]))) > 0  # the weight gradient is non-trivial
        for a, b in zip(fused, shared, strict=True):
            scale = max(float(jnp.max(jnp.abs(b))), 1e-6)  # d/dx of the R1 term is exactly 0
            assert float(jnp.max(jnp.abs(a - b))) / scale < 1e-4, fn.__name__


def test_demodulation_keeps_unit_variance():
    n, h, cin, cout = 8, 16, 64, 32
    key_x, key_w, key_s = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(key_x, (n, h, h, cin))
    w = jax.random.normal(key_w, (3, 3, cin, cout))
    s = jnp.exp(jax.random.normal(key_s, (n, cin)))  # styles far from 1
    for form in ("fused", "shared"):
        y = run(form, x, w, s)
        std = jnp.std(y[:, 1:-1, 1:-1], axis=(1, 2))  # per sample and channel, off the border
        assert abs(float(jnp.mean(std)) - 1) < 0.1
        assert float(jnp.max(jnp.abs(std - 1))) < 0.35


def test_unknown_form_is_refused():
    x, w, s = inputs()
    with pytest.raises(ValueError, match="unknown modulated-conv form 'grouped'"):
        run("grouped", x, w, s)
