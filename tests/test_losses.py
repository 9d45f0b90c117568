"""Losses and regularisers against hand-computed values, finite differences and explicit Jacobians;
the lazy-regularisation Adam correction and the EMA decay against their formulas."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from stylejax.losses import discriminator_loss, generator_loss, path_length_penalty, path_lengths, r1_penalty
from stylejax.train.state import make_optimizer
from stylejax.train.step import ema_beta


def softplus(x):
    return math.log1p(math.exp(x))


def test_logistic_losses_by_hand():
    fake = jnp.array([[0.5], [-1.0]])
    real = jnp.array([[2.0], [0.0]])
    assert float(generator_loss(fake)) == pytest.approx((softplus(-0.5) + softplus(1.0)) / 2, rel=1e-6)
    expected = (softplus(0.5) + softplus(-1.0)) / 2 + (softplus(-2.0) + softplus(0.0)) / 2
    assert float(discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-6)
    # At logits 0 both players score log 2 per term.
    zeros = jnp.zeros((4, 1))
    assert float(discriminator_loss(zeros, zeros)) == pytest.approx(2 * math.log(2), rel=1e-6)


def test_r1_penalty_matches_closed_form_and_finite_differences():
    # D(x) = sum(w * x^2) per sample: dD/dx = 2 w x, so |grad|^2 = sum(4 w^2 x^2).
    w = jnp.array([0.5, -1.5, 2.0])
    x = jnp.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    logits_fn = lambda x: jnp.sum(w * x ** 2, axis=1, keepdims=True)  # noqa: E731
    penalty, logits = r1_penalty(logits_fn, x)
    np.testing.assert_allclose(penalty, jnp.sum(4 * w ** 2 * x ** 2, axis=1), rtol=1e-6)
    np.testing.assert_allclose(logits, logits_fn(x))
    # A non-polynomial D, against central differences.
    nonlinear = lambda x: jnp.tanh(x @ jnp.array([[0.3], [-0.7], [1.1]]))  # noqa: E731
    penalty, _ = r1_penalty(nonlinear, x)
    x64, eps = np.asarray(x, np.float64), 1e-3
    for n in range(2):
        grad = []
        for i in range(3):
            plus, minus = x64.copy(), x64.copy()
            plus[n, i] += eps
            minus[n, i] -= eps
            f_plus, f_minus = (float(nonlinear(jnp.asarray(v, jnp.float32))[n, 0]) for v in (plus, minus))
            grad.append((f_plus - f_minus) / (2 * eps))
        assert float(penalty[n]) == pytest.approx(np.sum(np.square(grad)), rel=1e-2)


def test_path_lengths_equal_explicit_jacobian_formulation():
    key = jax.random.PRNGKey(0)
    n, num_ws, w_dim, h = 3, 4, 5, 2
    a = jax.random.normal(key, (num_ws * w_dim, h * h * 1))

    def synthesis(ws):  # a smooth non-linear map ws [n, num_ws, w_dim] -> images [n, h, h, 1]
        return jnp.sin(ws.reshape(n, -1) @ a).reshape(n, h, h, 1)

    ws = jax.random.normal(jax.random.PRNGKey(1), (n, num_ws, w_dim))
    probe = jax.random.normal(jax.random.PRNGKey(2), (n, h, h, 1))
    lengths = path_lengths(synthesis, ws, probe)
    probe = probe / math.sqrt(h * h)
    jac = jax.jacobian(synthesis)(ws)  # [n, h, h, 1, n, num_ws, w_dim]
    for i in range(n):
        jt_y = jnp.einsum("abc,abcwd->wd", probe[i], jac[i, :, :, :, i])  # J_i^T y_i
        expected = math.sqrt(float(jnp.mean(jnp.sum(jt_y ** 2, axis=1))))
        assert float(lengths[i]) == pytest.approx(expected, rel=1e-5)


def test_path_length_penalty_uses_updated_running_mean():
    lengths = jnp.array([1.0, 3.0])
    penalty, new_mean = path_length_penalty(lengths, jnp.float32(0.5), decay=0.01)
    assert float(new_mean) == pytest.approx(0.5 + 0.01 * (2.0 - 0.5))
    np.testing.assert_allclose(penalty, (np.array([1.0, 3.0]) - float(new_mean)) ** 2, rtol=1e-6)


def test_lazy_regularization_adam_correction_against_formula():
    lr, b1, b2, eps, interval = 0.002, 0.5, 0.99, 1e-8, 16
    r = interval / (interval + 1)
    opt = make_optimizer(lr, b1, b2, eps, interval)
    params = jnp.array([1.0, -2.0])
    grads = [jnp.array([0.3, -0.1]), jnp.array([-0.2, 0.4]), jnp.array([0.05, 0.05])]
    state = opt.init(params)
    m = v = np.zeros(2)
    expected = np.asarray(params, np.float64)
    b1r, b2r = b1 ** r, b2 ** r
    for t, g in enumerate(grads, start=1):
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
        gn = np.asarray(g, np.float64)
        m = b1r * m + (1 - b1r) * gn
        v = b2r * v + (1 - b2r) * gn ** 2
        expected = expected - lr * r * (m / (1 - b1r ** t)) / (np.sqrt(v / (1 - b2r ** t)) + eps)
        np.testing.assert_allclose(params, expected, rtol=1e-5)


def test_ema_beta_half_life_and_rampup():
    config = ml_collections.ConfigDict(dict(batch_size=32, ema_kimg=10.0, ema_rampup=None))
    # Half-life of 10 kimg: after 10,000 / 32 steps the old weights count one half.
    beta = float(ema_beta(config, jnp.int32(1000)))
    assert beta ** (10000 / 32) == pytest.approx(0.5, rel=1e-4)
    config.ema_rampup = 0.05
    # Ramp-up: half-life min(10 kimg, 0.05 * images seen) = 0.05 * 3200 images at step 100.
    assert float(ema_beta(config, jnp.int32(100))) == pytest.approx(0.5 ** (32 / 160), rel=1e-6)
    assert float(ema_beta(config, jnp.int32(0))) == 0.0  # the first update copies G
