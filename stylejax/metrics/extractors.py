"""Feature networks by name, and the metric names built on them.

A metric compares the features of one network: 'fid' / 'kid' use the FID Inception-v3 (weights
file required), 'fid_digits' / 'kid_digits' the digits classifier (offline, digits datasets
only), 'precision' / 'recall' torchvision's VGG16 fc2 (weights file required). The path lengths
'ppl_wend' / 'ppl_zfull' measure generated images alone, with LPIPS (`path_length`). Every
network sees images as the official code feeds them: the generator's [-1, 1] floats turned into
8-bit pixel values first, exactly as a saved PNG would have them, so generated and real images
are compared on the same footing.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp

from stylejax.data.digits import digits_name
from stylejax.metrics.errors import MetricsError

# metric name -> (feature network, distance)
METRICS = {
    "fid": ("inception", "fid"),
    "kid": ("inception", "kid"),
    "fid_digits": ("digits", "fid"),
    "kid_digits": ("digits", "kid"),
    "precision": ("vgg16", "precision"),
    "recall": ("vgg16", "recall"),
    "ppl_wend": ("lpips", "ppl_wend"),
    "ppl_zfull": ("lpips", "ppl_zfull"),
}
HIGHER_IS_BETTER = ("precision", "recall")  # every other metric is a distance


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
    """A feature network with its weights: `apply(params, pixels)` maps float pixel values
    [N, H, W, C] in [0, 255] to features [N, dim]. `fingerprint` names the weights in caches."""

    name: str
    dim: int
    params: Any
    apply: Callable[[Any, jnp.ndarray], jnp.ndarray]
    fingerprint: str


def parse_metrics(names: str | Sequence[str]) -> list[str]:
    """Metric names from a list and/or comma-separated strings, checked against METRICS.

    `--config.metrics=fid,kid` arrives as the 1-tuple ('fid,kid',), hence the split.
    """
    parts = [names] if isinstance(names, str) else names
    names = [n.strip() for part in parts for n in part.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise MetricsError(f"unknown metric {unknown[0]!r}; known metrics: {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def to_pixels(images: jnp.ndarray) -> jnp.ndarray:
    """[-1, 1] floats -> the 8-bit values (as float32) the official code feeds feature networks:
    floor(x * 127.5 + 128) clipped to [0, 255]. A real image u read as u / 127.5 - 1 comes back
    as exactly u."""
    return jnp.clip(jnp.floor(images.astype(jnp.float32) * 127.5 + 128), 0, 255)


def inception_extractor(path: str | None) -> FeatureExtractor:
    """The FID Inception-v3 with the weights of the file at `path` (.tgz or .pb)."""
    from stylejax.metrics.inception import FEATURE_DIM, InceptionV3
    from stylejax.metrics.inception_weights import load_inception

    params, fingerprint = load_inception(path)
    model = InceptionV3()

    def apply(p: Any, pixels: jnp.ndarray) -> jnp.ndarray:
        if pixels.shape[-1] == 1:  # grey images: the network expects RGB
            pixels = jnp.repeat(pixels, 3, axis=-1)
        return model.apply({"params": p}, pixels)

    return FeatureExtractor("inception", FEATURE_DIM, params, apply, f"inception-{fingerprint}")


def vgg16_extractor(path: str | None) -> FeatureExtractor:
    """torchvision's VGG16 fc2 features (the precision / recall space) with the weights of the
    file at `path` (vgg16-397923af.pth)."""
    from stylejax.metrics.vgg import VGG16, imagenet_features
    from stylejax.metrics.vgg_weights import load_vgg16

    params, widths, fc_width, fingerprint = load_vgg16(path)
    vgg = VGG16(widths, fc_width)
    return FeatureExtractor("vgg16", fc_width, params,
                            lambda p, pixels: imagenet_features(vgg, p, pixels),
                            f"vgg16-{fingerprint}")


def digits_extractor(dataset: str, data_dir: str | None, cache_dir: str,
                     dataset_fingerprint: str,
                     image_shape: tuple[int, int, int]) -> FeatureExtractor:
    """The digits classifier's penultimate features, trained for `dataset` on first use."""
    from stylejax.metrics.digits_classifier import FEATURE_DIM, features, load_or_train

    if digits_name(dataset) is None:
        raise MetricsError(f"the *_digits metrics need a digits dataset (digits, digits64, ...), "
                           f"got {dataset!r}; use fid / kid (Inception) for other datasets")
    variables, fingerprint = load_or_train(dataset, data_dir, cache_dir, dataset_fingerprint,
                                           image_shape)

    def apply(v: Any, pixels: jnp.ndarray) -> jnp.ndarray:
        return features(v, pixels / 127.5 - 1)

    return FeatureExtractor("digits", FEATURE_DIM, variables, apply, f"digits-{fingerprint}")
