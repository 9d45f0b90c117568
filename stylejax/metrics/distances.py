"""Fréchet distance and KID between two sets of feature vectors.

Features arrive in batches (from a sharded network, one batch at a time), so `FeatureStats`
accumulates their mean and covariance in float64 on the host as they stream by; it keeps the
vectors themselves only when KID needs them. FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))
(Heusel et al. 2017); KID is the unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets (Binkowski et al. 2018), with the
official defaults of 100 subsets of at most 1000 vectors. Precision and recall compare the
sets' k-nearest-neighbour manifolds (Kynkaanniemi et al. 2019).
"""

import jax
import jax.numpy as jnp
import numpy as np

from stylejax.files import write_atomically


class FeatureStats:
    """Running count, mean and covariance of feature vectors [N, dim], in float64.

    Sums are taken around the first batch's mean (a fixed shift), so the covariance does not
    lose digits when the mean is large compared with the spread. `cov` is the unbiased sample
    covariance (divided by N - 1), as numpy's `np.cov` used by the reference FID code.
    """

    def __init__(self, dim: int, keep_features: bool = False):
        self.dim = dim
        self.count = 0
        self._shift: np.ndarray | None = None
        self._sum = np.zeros(dim, np.float64)
        self._outer = np.zeros((dim, dim), np.float64)
        self._kept: list[np.ndarray] | None = [] if keep_features else None

    def add(self, features: np.ndarray) -> None:
        """Adds a batch of feature vectors [n, dim]."""
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"expected features of shape [n, {self.dim}], got {features.shape}")
        if not len(features):
            return
        x = features.astype(np.float64)
        if self._shift is None:
            self._shift = x.mean(axis=0)
        x -= self._shift
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x
        self.count += len(x)
        if self._kept is not None:
            self._kept.append(np.asarray(features, np.float32))

    @property
    def mean(self) -> np.ndarray:
        self._check_count(1)
        return self._shift + self._sum / self.count

    @property
    def cov(self) -> np.ndarray:
        self._check_count(2)
        centred = self._sum / self.count
        return (self._outer - self.count * np.outer(centred, centred)) / (self.count - 1)

    @property
    def features(self) -> np.ndarray:
        """All vectors added, float32 [count, dim]; only with keep_features=True."""
        if self._kept is None:
            raise ValueError("these statistics were accumulated without keep_features=True")
        return np.concatenate(self._kept) if self._kept else np.zeros((0, self.dim), np.float32)

    @property
    def has_features(self) -> bool:
        return self._kept is not None

    def save(self, path: str) -> None:
        """Writes the accumulators (and kept features) to an .npz, atomically."""
        arrays = {"count": np.int64(self.count), "sum": self._sum, "outer": self._outer,
                  "shift": np.zeros(self.dim) if self._shift is None else self._shift}
        if self._kept is not None:
            arrays["features"] = self.features
        write_atomically(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str) -> "FeatureStats":
        with np.load(path) as data:
            stats = cls(data["sum"].shape[0], keep_features="features" in data)
            stats.count = int(data["count"])
            stats._sum, stats._outer, stats._shift = data["sum"], data["outer"], data["shift"]
            if "features" in data:
                stats._kept = [data["features"]]
        return stats

    def _check_count(self, needed: int) -> None:
        if self.count < needed:
            raise ValueError(f"need at least {needed} feature vectors, have {self.count}")


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray,
                     cov2: np.ndarray) -> float:
    """The Fréchet distance between N(mu1, cov1) and N(mu2, cov2), in float64.

    Tr((S1 S2)^(1/2)) is computed as Tr((A S2 A)^(1/2)) with A = S1^(1/2), a symmetric
    positive semi-definite matrix with the same eigenvalues as S1 S2, so only symmetric
    eigensolvers are needed: no complex parts and no failure on singular covariances (fewer
    samples than dimensions), where a general matrix square root struggles.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    w, v = np.linalg.eigh((cov1 + cov1.T) / 2)
    root1 = (v * np.sqrt(_rank_clip(w))) @ v.T
    inner = root1 @ cov2 @ root1
    trace_sqrt = np.sqrt(_rank_clip(np.linalg.eigvalsh((inner + inner.T) / 2))).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt)


def _rank_clip(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues below rounding level (n * eps * the largest, numpy's matrix-rank tolerance)
    set to 0: their square roots would otherwise add about 1e-8 each to FID."""
    tolerance = len(eigenvalues) * np.finfo(np.float64).eps * max(eigenvalues.max(initial=0), 0)
    return np.where(eigenvalues > tolerance, eigenvalues, 0.0)


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two accumulated feature sets."""
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def kernel_inception_distance(x: np.ndarray, y: np.ndarray, num_subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> float:
    """KID between feature sets x [n, d] and y [m, d]: the mean over `num_subsets` random
    subset pairs (each min(n, m, max_subset_size) vectors, drawn without replacement) of the
    unbiased MMD^2 estimate with kernel (x.y / d + 1)^3. Subsets come from `seed`, so the same
    features always give the same number; sums are in float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need two feature sets [n, d] of the same d, got {x.shape}, {y.shape}")
    size = min(len(x), len(y), max_subset_size)
    if size < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {len(x)}, {len(y)}")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        a = x[rng.choice(len(x), size, replace=False)]
        b = y[rng.choice(len(y), size, replace=False)]
        within = _kernel_sum(a, a, diagonal=False) + _kernel_sum(b, b, diagonal=False)
        total += within / (size * (size - 1)) - 2 * _kernel_sum(a, b) / size ** 2
    return float(total / num_subsets)


def _kernel_sum(a: np.ndarray, b: np.ndarray, diagonal: bool = True) -> float:
    """Sum of (a_i.b_j / d + 1)^3 over all pairs (without i = j unless `diagonal`)."""
    k = a @ b.T
    k /= a.shape[1]
    k += 1
    cube = k * k
    cube *= k
    return float(cube.sum() - (0 if diagonal else np.trace(cube)))


@jax.jit
def _squared_distances(rows: jnp.ndarray, cols: jnp.ndarray) -> jnp.ndarray:
    """|r - c|^2 of every row and column vector, float32, never below 0."""
    dots = rows @ cols.T
    return jnp.maximum(jnp.sum(rows * rows, 1)[:, None] + jnp.sum(cols * cols, 1)[None] - 2 * dots,
                       0)


def _blocks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _kth_neighbour_radii(manifold: np.ndarray, k: int, row_batch: int, col_batch: int) -> np.ndarray:
    """Squared distance from each manifold vector to its k-th nearest other one (the k+1-th
    smallest, itself included), as the official estimator's kthvalue(k + 1)."""
    radii = []
    for rows in _blocks(len(manifold), row_batch):
        smallest = None  # the k + 1 smallest squared distances so far, per row
        for cols in _blocks(len(manifold), col_batch):
            d = _squared_distances(manifold[rows], manifold[cols])
            if smallest is not None:
                d = jnp.concatenate([smallest, d], axis=1)
            smallest = -jax.lax.top_k(-d, min(k + 1, d.shape[1]))[0]
        if smallest.shape[1] < k + 1:
            raise ValueError(f"a manifold of {len(manifold)} vectors has no {k}-th neighbours")
        radii.append(np.asarray(smallest[:, k]))
    return np.concatenate(radii)


def _inside(probes: np.ndarray, manifold: np.ndarray, radii: np.ndarray, row_batch: int,
            col_batch: int) -> np.ndarray:
    """Whether each probe lies within some manifold vector's k-NN ball."""
    inside = []
    for rows in _blocks(len(probes), row_batch):
        hit = np.zeros(rows.stop - rows.start, bool)
        for cols in _blocks(len(manifold), col_batch):
            d = _squared_distances(probes[rows], manifold[cols])
            hit |= np.asarray(jnp.any(d <= jnp.asarray(radii[cols])[None], axis=1))
        inside.append(hit)
    return np.concatenate(inside)


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3,
                     row_batch: int = 1024, col_batch: int = 8192) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): the fraction of generated
    vectors within the k-NN balls of the real ones, and of real vectors within those of the
    generated ones; distances in float32 blocks of row_batch x col_batch (the result does not
    depend on them)."""
    real, generated = np.asarray(real, np.float32), np.asarray(generated, np.float32)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"need two feature sets [n, d] of the same d, got {real.shape}, "
                         f"{generated.shape}")
    results = []
    for manifold, probes in ((real, generated), (generated, real)):
        radii = _kth_neighbour_radii(manifold, k, row_batch, col_batch)
        results.append(float(_inside(probes, manifold, radii, row_batch, col_batch).mean()))
    return results[0], results[1]
