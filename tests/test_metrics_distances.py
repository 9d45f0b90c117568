"""Fréchet distance and KID against closed forms and float64 references on Gaussians, their
invariances, and the streamed feature statistics."""

import numpy as np
import pytest
import scipy.linalg
from scipy.stats import ortho_group

from stylejax.metrics.distances import (
    FeatureStats,
    fid_from_stats,
    frechet_distance,
    kernel_inception_distance,
)


def random_spd(dim: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def reference_fid(mu1, s1, mu2, s2) -> float:
    """The textbook formula with a general matrix square root, in float64."""
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root.real))


def test_one_dimensional_gaussians():
    # W2^2 of N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2.
    value = frechet_distance(np.array([1.5]), np.array([[4.0]]), np.array([-0.5]),
                             np.array([[0.25]]))
    assert value == pytest.approx(2.0 ** 2 + (2.0 - 0.5) ** 2, rel=1e-12)


@pytest.mark.parametrize("rotated", [False, True])
def test_commuting_covariances_have_the_closed_form(rotated):
    rng = np.random.default_rng(0)
    dim = 16
    a, b = rng.uniform(0.1, 3, dim), rng.uniform(0.1, 3, dim)
    q = ortho_group.rvs(dim, random_state=1) if rotated else np.eye(dim)
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    value = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert value == pytest.approx(expected, rel=1e-10)


def test_general_covariances_match_the_float64_reference():
    rng = np.random.default_rng(2)
    dim = 64
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    s1, s2 = random_spd(dim, 3), random_spd(dim, 4)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference_fid(mu1, s1, mu2, s2),
                                                               rel=1e-9)


def test_identical_statistics_give_zero_even_when_singular():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(20, 64))  # fewer vectors than dimensions: rank-deficient cov
    stats = FeatureStats(64)
    stats.add(features)
    assert abs(fid_from_stats(stats, stats)) < 1e-10 * np.trace(stats.cov)
    s = random_spd(32, 6)
    assert abs(frechet_distance(np.ones(32), s, np.ones(32), s)) < 1e-10 * np.trace(s)


def test_a_shift_adds_its_squared_length():
    s = random_spd(32, 7)
    mu = np.random.default_rng(8).normal(size=32)
    shift = np.random.default_rng(9).normal(size=32)
    assert frechet_distance(mu + shift, s, mu, s) == pytest.approx(shift @ shift, rel=1e-9)


def test_fid_of_samples_approaches_the_population_value():
    rng = np.random.default_rng(10)
    dim = 8
    mu1, mu2 = np.zeros(dim), np.full(dim, 0.5)
    s1, s2 = random_spd(dim, 11), random_spd(dim, 12)
    a, b = FeatureStats(dim), FeatureStats(dim)
    a.add(rng.multivariate_normal(mu1, s1, 200_000))
    b.add(rng.multivariate_normal(mu2, s2, 200_000))
    assert fid_from_stats(a, b) == pytest.approx(reference_fid(mu1, s1, mu2, s2), rel=0.02)


def test_streamed_statistics_equal_numpy_in_float64():
    rng = np.random.default_rng(13)
    # A large mean next to a small spread: naive sums of squares would lose the covariance.
    features = (1e4 + rng.normal(size=(1000, 12)) * rng.uniform(0.1, 2, 12)).astype(np.float32)
    stats = FeatureStats(12, keep_features=True)
    for chunk in np.array_split(features, [0, 1, 7, 300, 301, 999]):  # empty and 1-row batches
        stats.add(chunk)
    x = features.astype(np.float64)
    assert stats.count == 1000
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.features, features)


def test_statistics_survive_a_save_and_load(tmp_path):
    stats = FeatureStats(5, keep_features=True)
    stats.add(np.random.default_rng(14).normal(size=(40, 5)))
    stats.save(str(tmp_path / "s.npz"))
    loaded = FeatureStats.load(str(tmp_path / "s.npz"))
    assert loaded.count == 40 and loaded.has_features
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.cov, stats.cov)
    np.testing.assert_array_equal(loaded.features, stats.features)


def test_too_few_or_misshaped_features_are_refused():
    stats = FeatureStats(3)
    with pytest.raises(ValueError, match=r"shape \[n, 3\]"):
        stats.add(np.zeros((2, 4)))
    stats.add(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        stats.cov  # noqa: B018 - the property raises
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))


# --- KID -----------------------------------------------------------------------------------------


def reference_kid(x, y, num_subsets, max_subset_size, seed) -> float:
    """The unbiased MMD^2 estimate written out pair by pair in float64, on the same subsets."""
    rng = np.random.default_rng(seed)
    m, d = min(len(x), len(y), max_subset_size), x.shape[1]

    def k(u, v):
        return (float(np.dot(u, v)) / d + 1) ** 3

    total = 0.0
    for _ in range(num_subsets):
        a = x[rng.choice(len(x), m, replace=False)].astype(np.float64)
        b = y[rng.choice(len(y), m, replace=False)].astype(np.float64)
        same = sum(k(a[i], a[j]) + k(b[i], b[j]) for i in range(m) for j in range(m) if i != j)
        cross = sum(k(a[i], b[j]) for i in range(m) for j in range(m))
        total += same / (m * (m - 1)) - 2 * cross / m ** 2
    return total / num_subsets


def test_kid_equals_the_pairwise_float64_reference():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(70, 6)).astype(np.float32)
    y = (rng.normal(size=(50, 6)) * 1.3 + 0.2).astype(np.float32)
    value = kernel_inception_distance(x, y, num_subsets=3, max_subset_size=40, seed=7)
    assert value == pytest.approx(reference_kid(x, y, 3, 40, 7), rel=1e-10)


def expected_kernel(mu1, s1, mu2, s2) -> float:
    """E[(x.y / d + 1)^3] for independent x ~ N(mu1, s1), y ~ N(mu2, s2), in closed form.

    With t = x.y: E t = a, E t^2 = tr((s1 + mu1 mu1')(s2 + mu2 mu2')), and (t given y is normal)
    E t^3 = a^3 + 3a(mu1' s2 mu1 + mu2' s1 mu2 + tr(s1 s2)) + 6 mu1' s2 s1 mu2, a = mu1.mu2.
    """
    d = len(mu1)
    a = mu1 @ mu2
    t2 = np.trace((s1 + np.outer(mu1, mu1)) @ (s2 + np.outer(mu2, mu2)))
    t3 = (a ** 3 + 3 * a * (mu1 @ s2 @ mu1 + mu2 @ s1 @ mu2 + np.trace(s1 @ s2))
          + 6 * mu1 @ s2 @ s1 @ mu2)
    return t3 / d ** 3 + 3 * t2 / d ** 2 + 3 * a / d + 1


def test_kid_estimates_the_population_mmd_of_gaussians():
    rng = np.random.default_rng(16)
    dim = 4
    mu1, mu2 = np.zeros(dim), np.full(dim, 0.4)
    s1, s2 = np.eye(dim), random_spd(dim, 17)
    mmd2 = (expected_kernel(mu1, s1, mu1, s1) + expected_kernel(mu2, s2, mu2, s2)
            - 2 * expected_kernel(mu1, s1, mu2, s2))
    x = rng.multivariate_normal(mu1, s1, 20_000)
    y = rng.multivariate_normal(mu2, s2, 20_000)
    value = kernel_inception_distance(x, y, num_subsets=100, max_subset_size=1000)
    assert mmd2 > 0.1
    assert value == pytest.approx(mmd2, rel=0.05)


def test_kid_of_a_set_with_itself_is_zero_within_its_noise():
    rng = np.random.default_rng(18)
    x = rng.normal(size=(2000, 16))
    same = kernel_inception_distance(x, x, num_subsets=20)
    shifted = kernel_inception_distance(x, x + 0.25, num_subsets=20)
    assert abs(same) < 0.05 * shifted
    # Seeded subsets: the same number every time.
    assert kernel_inception_distance(x, x, num_subsets=20) == same
