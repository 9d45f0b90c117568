"""The offline default dataset: scikit-learn's 1797 handwritten digits as a TFDS dataset.

Real scans (8x8, grey values 0-16, 10 classes) that ship with scikit-learn, so a first training run
needs no download. `digits` is 32x32 RGB; `digits<R>` (e.g. `digits64`) is the same at any power
of two R >= 4. The images are upscaled with the Lanczos filter and the grey replicated to RGB.
Split: a fixed permutation (numpy PCG64, seed 0) holds out 180 images as 'test'; the other 1617
are 'train'. It is built by `write_dataset`, the same path as prepared user datasets, the first
time it is asked for.
"""

import logging
import os
import re

import numpy as np

from stylejax.data.builder import check_resolution, write_dataset
from stylejax.data.errors import DatasetError
from stylejax.data.images import encode_png, resize

DEFAULT_RESOLUTION = 32
NUM_HELD_OUT = 180
_NAME = re.compile(r"digits([1-9][0-9]*)?")

log = logging.getLogger(__name__)


def digits_name(name: str) -> str | None:
    """The on-disk name for a digits alias ('digits' -> 'digits32'), None for other names."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return f"digits{match.group(1) or DEFAULT_RESOLUTION}"


def digits_splits() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(images uint8 [1797, 8, 8], labels [1797], {'train': indices, 'test': indices})."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    splits = {"train": np.sort(order[NUM_HELD_OUT:]), "test": np.sort(order[:NUM_HELD_OUT])}
    return images, digits.target, splits


def build_digits(name: str, data_dir: str) -> None:
    """Writes the digits dataset `name` ('digits' or 'digits<R>') into `data_dir`."""
    canonical = digits_name(name)
    if canonical is None:
        raise ValueError(f"{name!r} is not a digits dataset name")
    resolution = int(canonical[len("digits"):])
    check_resolution(resolution)
    images, labels, splits = digits_splits()

    def examples(indices: np.ndarray):
        for i in indices:
            grey = resize(images[i][..., None], resolution, "lanczos")
            yield encode_png(np.repeat(grey, 3, axis=-1)), int(labels[i])

    log.info("building the %s dataset in %s (first use)", canonical, data_dir)
    try:
        write_dataset(canonical, data_dir, {s: examples(idx) for s, idx in splits.items()},
                      resolution=resolution, channels=3, num_classes=10,
                      description="scikit-learn's handwritten digits (UCI optdigits test set), "
                                  f"Lanczos-upscaled to {resolution}x{resolution} RGB.")
    except DatasetError:
        if not os.path.isdir(os.path.join(data_dir, canonical)):
            raise
        log.info("%s was built by another process meanwhile", canonical)
