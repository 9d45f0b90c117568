"""Feature statistics of many images: global batches sharded over the mesh, and a disk cache of
the dataset's statistics.

Images go through the feature networks in global batches laid out like training batches (batch
axis on 'data'), so every device works and each process feeds only its rows. The features of a
batch are gathered to every process and accumulated on the host (`FeatureStats`, float64);
every process ends with the same statistics. A dataset split's statistics depend only on the
dataset files and the network, so they are computed once and cached in `cache_dir` under a key
of (dataset, split, resolution, network weights, dataset files); process 0 writes the cache.
"""

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from stylejax.data.pipeline import InputPipeline, to_global
from stylejax.metrics.distances import FeatureStats
from stylejax.metrics.extractors import FeatureExtractor, to_pixels

CACHE_VERSION = 1  # part of every cache key: bump it when what is cached changes

log = logging.getLogger(__name__)

# One global batch: images (or already features) on the mesh, and how many leading rows count.
Batch = tuple[Any, int]


def default_cache_dir() -> str:
    """$STYLEJAX_CACHE_DIR, else $XDG_CACHE_HOME/stylejax, else ~/.cache/stylejax."""
    if os.environ.get("STYLEJAX_CACHE_DIR"):
        return os.path.expanduser(os.environ["STYLEJAX_CACHE_DIR"])
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                        "stylejax")


def round_batch(batch_size: int, mesh: Mesh) -> int:
    """The smallest multiple of the mesh's device count that is >= batch_size."""
    return -(-max(batch_size, 1) // mesh.size) * mesh.size


class FeatureRunner:
    """Runs feature networks on global batches of [-1, 1] images sharded on 'data'."""

    def __init__(self, extractors: dict[str, FeatureExtractor], mesh: Mesh):
        self.extractors = extractors
        self.batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
        self.params = jax.device_put({k: e.params for k, e in extractors.items()},
                                     NamedSharding(mesh, PartitionSpec()))
        self._jitted = jax.jit(self.extract, out_shardings=self.batch_sharding)

    def extract(self, params: dict, images: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """Features of every network (pure; usable inside other jitted functions)."""
        pixels = to_pixels(images)
        return {k: e.apply(params[k], pixels) for k, e in self.extractors.items()}

    def stats(self, batches: Iterable[Batch], keep: Collection[str]) -> dict[str, FeatureStats]:
        """Statistics per network of all valid rows of the image batches; the networks named in
        `keep` also keep their feature vectors (KID needs them)."""
        features = ((self._jitted(self.params, images), valid) for images, valid in batches)
        return accumulate(features, {k: e.dim for k, e in self.extractors.items()}, keep)


def accumulate(batches: Iterable[Batch], dims: dict[str, int],
               keep: Collection[str]) -> dict[str, FeatureStats]:
    """Gathers feature batches ({network: global [B, dim]}, valid rows) into host statistics."""
    stats = {k: FeatureStats(d, keep_features=k in keep) for k, d in dims.items()}
    for features, valid in batches:
        for k, value in features.items():
            stats[k].add(multihost_utils.process_allgather(value, tiled=True)[:valid])
    return stats


def dataset_batches(data: InputPipeline, sharding: NamedSharding) -> Iterator[Batch]:
    """Every example of the pipeline's split exactly once: the steps of epoch 0, the last one
    cut to the examples left."""
    total, size = data.num_examples, data.global_batch_size
    with data.iterate(0) as batches:
        for step in range(math.ceil(total / size)):
            yield to_global(next(batches), sharding)["image"], min(size, total - step * size)


def host_batches(arrays: Iterable[np.ndarray], batch_size: int,
                 sharding: NamedSharding) -> Iterator[Batch]:
    """Global batches of `batch_size` rows (the last one padded) from arrays of any length that
    every process holds in full; each process lays only its own rows onto its devices."""
    rows = batch_size // jax.process_count()
    start = jax.process_index() * rows

    def to_device(chunk: np.ndarray) -> Batch:
        padded = np.zeros((batch_size, *chunk.shape[1:]), np.float32)
        padded[:len(chunk)] = chunk
        return (jax.make_array_from_process_local_data(sharding, padded[start:start + rows]),
                len(chunk))

    pending, count = [], 0
    for array in arrays:
        pending.append(np.asarray(array, np.float32))
        count += len(array)
        while count >= batch_size:
            joined = np.concatenate(pending)
            yield to_device(joined[:batch_size])
            pending, count = [joined[batch_size:]], count - batch_size
    if count:
        yield to_device(np.concatenate(pending))


def dataset_fingerprint(data: InputPipeline) -> str:
    """Changes whenever the dataset's files do (rebuilt, re-prepared): names, sizes, times.
    Listed through etils.epath, so datasets on GCS are fingerprinted too."""
    root = epath.Path(data.data_dir) / data.name
    entries = []
    for folder, _, files in root.walk():
        for name in files:
            st = (folder / name).stat()
            entries.append(f"{(folder / name).relative_to(root)}:{st.length}:{st.mtime}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def _cache_path(cache_dir: str, data: InputPipeline, extractor: FeatureExtractor,
                fingerprint: str) -> str:
    key = json.dumps([CACHE_VERSION, data.name, data.split, data.resolution,
                      extractor.fingerprint, fingerprint])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{data.name}_{data.split}_{data.resolution}")
    return os.path.join(cache_dir, f"stats_{readable}_{extractor.name}_{digest}.npz")


def reference_stats(extractors: dict[str, FeatureExtractor], mesh: Mesh, data: InputPipeline,
                    cache_dir: str, keep: Collection[str]) -> dict[str, FeatureStats]:
    """Statistics of a dataset split per network, from the cache or computed (then cached);
    those named in `keep` with their feature vectors.

    `data` must not flip images; its batch size must suit the mesh (see `round_batch`).
    """
    fingerprint = dataset_fingerprint(data)
    paths = {k: _cache_path(cache_dir, data, e, fingerprint) for k, e in extractors.items()}
    stats = {}
    for k, path in paths.items():
        if os.path.isfile(path):
            cached = FeatureStats.load(path)
            if cached.has_features or k not in keep:
                stats[k] = cached
    missing = {k: e for k, e in extractors.items() if k not in stats}
    if missing:
        log.info("computing %s features of %s[%s] (%d images); cached afterwards in %s",
                 "/".join(missing), data.name, data.split, data.num_examples, cache_dir)
        runner = FeatureRunner(missing, mesh)
        computed = runner.stats(dataset_batches(data, runner.batch_sharding), keep)
        if jax.process_index() == 0:
            os.makedirs(cache_dir, exist_ok=True)
            for k, s in computed.items():
                s.save(paths[k])
        stats.update(computed)
    return stats
