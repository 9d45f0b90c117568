"""The metrics of a config for a generator or a set of images: the hook the training loop calls.

    evaluator = Evaluator(config, G, mesh)            # once, before training
    results = evaluator(state.generator_variables(ema=True), step)   # {'fid_digits': 12.3, ...}

Construction does the slow, one-off work and surfaces bad input before any training: it checks
the metric names, loads (or trains, for the digits metrics) the feature networks and loads (or
computes and caches) the statistics of `config.metrics_split` of the dataset. A call then
generates `config.metrics_num_samples` images in global batches sharded over the mesh (G, the
feature networks and 8-bit rounding in one compiled function, so images never leave the
devices) and compares their features with the dataset's. The path lengths draw their own paths and score
them with LPIPS, in batches of the same size. Latents, labels and noise come from
`config.seed` alone, so successive evaluations of a run see the same latents, and the numbers
do not depend on the device count.
"""

import logging
import math
import time
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from stylejax.data.pipeline import InputPipeline
from stylejax.metrics.distances import (
    FeatureStats,
    fid_from_stats,
    kernel_inception_distance,
    precision_recall,
)
from stylejax.metrics.errors import MetricsError
from stylejax.metrics.extractors import (
    METRICS,
    FeatureExtractor,
    digits_extractor,
    inception_extractor,
    parse_metrics,
    vgg16_extractor,
)
from stylejax.metrics.features import (
    FeatureRunner,
    accumulate,
    dataset_fingerprint,
    default_cache_dir,
    host_batches,
    reference_stats,
    round_batch,
)
from stylejax.metrics.path_length import PATH_LENGTHS, PathLength, filtered_mean
from stylejax.metrics.vgg import LPIPS
from stylejax.metrics.vgg_weights import load_lpips
from stylejax.models import Generator

_EVAL_STREAM = 0x6D657472  # folded into config.seed: evaluation draws apart from training's
_PATH_STREAM = 0x70706C  # folded in again for the path lengths' draws
KEEP_FEATURES = ("kid", "precision", "recall")  # the distances that need the vectors themselves

log = logging.getLogger(__name__)


class Evaluator:
    """`config.metrics` of generated images against the dataset split `config.metrics_split`
    (the path lengths against nothing).

    `G` may be None to score only given images (`score_images`). `data_dir` defaults to
    `config.data_dir`. Every process must construct and call it alike (collective computation).
    """

    def __init__(self, config: ml_collections.ConfigDict, G: Generator | None, mesh: Mesh,
                 data_dir: str | None = None):
        self.names = parse_metrics(config.metrics)
        if not self.names:
            raise MetricsError("config.metrics is empty; name at least one metric, e.g. "
                               "--config.metrics=fid_digits,kid_digits")
        if config.metrics_num_samples < 2:
            raise MetricsError(f"config.metrics_num_samples must be at least 2, got "
                               f"{config.metrics_num_samples}")
        self.num_samples = config.metrics_num_samples
        self.batch_size = round_batch(config.metrics_batch_size, mesh)
        self.G = G
        self.paths = {n: PATH_LENGTHS[n] for n in self.names if n in PATH_LENGTHS}
        if self.paths:  # before the dataset, which may take a while to build
            lpips_params, widths, _ = load_lpips(config.vgg16_path, config.lpips_path)
            self.lpips = LPIPS(widths)
        data = InputPipeline(config.dataset, global_batch_size=self.batch_size, seed=0,
                             split=config.metrics_split, data_dir=data_dir or config.data_dir)
        self.resolution, self.channels = data.resolution, data.num_channels
        if G is not None and (G.resolution, G.img_channels) != (self.resolution, self.channels):
            raise MetricsError(
                f"the generator makes {G.resolution}x{G.resolution} images with {G.img_channels} "
                f"channels but dataset {data.name!r} has {self.resolution}x{self.resolution} with "
                f"{self.channels}; compare with a dataset prepared at the generator's size")
        cache_dir = config.metrics_cache_dir or default_cache_dir()
        networks = list(dict.fromkeys(METRICS[n][0] for n in self.names if n not in self.paths))
        extractors = {k: self._extractor(k, config, data, cache_dir) for k in networks}
        self._keep = {METRICS[n][0] for n in self.names if METRICS[n][1] in KEEP_FEATURES}
        self.runner = FeatureRunner(extractors, mesh)
        self.reference = reference_stats(extractors, mesh, data, cache_dir, self._keep)
        self._key = jax.random.fold_in(jax.random.key(config.seed), _EVAL_STREAM)
        self._replicated = NamedSharding(mesh, PartitionSpec())
        if G is not None:
            self._generate = jax.jit(self._generated_features,
                                     out_shardings=self.runner.batch_sharding)
        if self.paths:
            self._lpips_params = jax.device_put(lpips_params, self._replicated)
            self.ppl_crop = config.ppl_crop
            self._path_samples = jax.jit(self._path_samples_of, static_argnums=3,
                                         out_shardings=self.runner.batch_sharding)

    @staticmethod
    def _extractor(network: str, config: ml_collections.ConfigDict, data: InputPipeline,
                   cache_dir: str) -> FeatureExtractor:
        if network == "inception":
            return inception_extractor(config.inception_path)
        if network == "vgg16":
            return vgg16_extractor(config.vgg16_path)
        return digits_extractor(data.name, data.data_dir, cache_dir, dataset_fingerprint(data),
                                (data.resolution, data.resolution, data.num_channels))

    def _generated_features(self, variables: dict, params: dict,
                            index: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """Features of generated batch `index` (official sampling: random noise, psi = 1;
        labels of conditional generators uniform over the classes)."""
        G = self.G
        z_key, c_key, noise_key = jax.random.split(jax.random.fold_in(self._key, index), 3)
        sharding = self.runner.batch_sharding
        z = jax.lax.with_sharding_constraint(
            jax.random.normal(z_key, (self.batch_size, G.z_dim)), sharding)
        images = G.apply(variables, z, self._labels(c_key), noise_mode="random",
                         rngs={"noise": noise_key})
        return self.runner.extract(params, images)

    def _labels(self, key: jax.Array) -> jnp.ndarray | None:
        """One-hot labels uniform over the classes of a conditional generator, else None."""
        if not self.G.c_dim:
            return None
        return jax.nn.one_hot(jax.random.randint(key, (self.batch_size,), 0, self.G.c_dim),
                              self.G.c_dim)

    def _path_samples_of(self, variables: dict, lpips_params: dict, index: jnp.ndarray,
                         path: PathLength) -> jnp.ndarray:
        """PPL samples of batch `index`: the two images of a path share noise (the official
        randomised noise_const buffers, drawn anew per batch)."""
        G, sharding = self.G, self.runner.batch_sharding
        key = jax.random.fold_in(jax.random.fold_in(self._key, _PATH_STREAM), index)
        path_key, c_key, noise_key = jax.random.split(key, 3)
        t, z0, z1 = (jax.lax.with_sharding_constraint(a, sharding)
                     for a in path.endpoints(path_key, self.batch_size, G.z_dim))
        c = self._labels(c_key)
        if "noise_consts" in variables:
            leaves, tree = jax.tree_util.tree_flatten(variables["noise_consts"])
            keys = jax.random.split(noise_key, len(leaves))
            variables = {**variables, "noise_consts": jax.tree_util.tree_unflatten(
                tree, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)])}
        return path.distances(
            t, z0, z1,
            lambda z: G.apply(variables, z, None if c is None else jnp.concatenate([c, c]),
                              method=G.map_latents),
            lambda ws: G.apply(variables, ws, "const", method=G.synthesize),
            lambda x0, x1: self.lpips.apply({"params": lpips_params}, x0, x1), self.ppl_crop)

    def path_samples(self, generator_variables: dict, name: str) -> np.ndarray:
        """config.metrics_num_samples samples of the path length `name`, on the host."""
        count, size = self.num_samples, self.batch_size
        variables = jax.device_put(generator_variables, self._replicated)
        return np.concatenate([
            multihost_utils.process_allgather(self._path_samples(
                variables, self._lpips_params, np.int32(i), self.paths[name]), tiled=True)[
                :min(size, count - i * size)] for i in range(math.ceil(count / size))])

    def __call__(self, generator_variables: dict, step: int | None = None) -> dict[str, float]:
        """{metric: value} for the generator with these variables (e.g. the EMA ones)."""
        start = time.time()
        results = self._score(self.generated_stats(generator_variables))
        for name in self.paths:
            results[name] = filtered_mean(self.path_samples(generator_variables, name))
        results = {name: results[name] for name in self.names}
        log.info("%s%s on %d generated images (%.1f s)", "" if step is None else f"step {step}: ",
                 "  ".join(f"{k} {v:.4g}" for k, v in results.items()), self.num_samples,
                 time.time() - start)
        return results

    def generated_stats(self, generator_variables: dict) -> dict[str, FeatureStats]:
        """Feature statistics per network of config.metrics_num_samples generated images."""
        if self.G is None:
            raise ValueError("this Evaluator was made without a generator; use score_images")
        if not self.runner.extractors:
            return {}
        count, size = self.num_samples, self.batch_size
        variables = jax.device_put(generator_variables, self._replicated)
        batches = ((self._generate(variables, self.runner.params, np.int32(i)),
                    min(size, count - i * size)) for i in range(math.ceil(count / size)))
        return accumulate(batches, {k: e.dim for k, e in self.runner.extractors.items()},
                          self._keep)

    def score_images(self, batches: Iterable[np.ndarray]) -> dict[str, float]:
        """{metric: value} for images given as float arrays [n, R, R, C] in [-1, 1] at the
        dataset's resolution (any n per array), the same on every process."""
        if self.paths:
            raise MetricsError(f"{', '.join(self.paths)} measure a generator's latent paths, not "
                               "a set of images; score a --workdir or --network instead")
        sharding = self.runner.batch_sharding
        return self._score(self.runner.stats(host_batches(batches, self.batch_size, sharding),
                                             self._keep))

    def _score(self, stats: dict[str, FeatureStats]) -> dict[str, float]:
        results = {}
        for name in self.names:
            network, distance = METRICS[name]
            if name in self.paths:
                continue
            ours, theirs = stats[network], self.reference[network]
            if ours.count < 2:
                raise MetricsError(f"{name} needs at least 2 images, got {ours.count}")
            if distance == "fid":
                results[name] = fid_from_stats(ours, theirs)
            elif distance == "kid":
                results[name] = kernel_inception_distance(ours.features, theirs.features)
            elif "precision" not in results:  # precision and recall come together
                results["precision"], results["recall"] = precision_recall(theirs.features,
                                                                           ours.features)
        return {name: results[name] for name in self.names if name in results}
