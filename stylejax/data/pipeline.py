"""The input pipeline: this process's rows of the global batch of step s, a function of (seed, s).

Datasets are TFDS datasets in the array_record format, read by random access. The global batch
of step s holds the examples at stream positions s*B ... s*B + B - 1 of an endless stream in
which epoch e is a permutation of the split drawn from (seed, e). So the batch of any step is
computed directly, without iterator state: a resumed run sees exactly the batches of an
uninterrupted one. Process p of P reads only rows [p*B/P, (p+1)*B/P) of each global batch. The
x-flip of row r at step s is drawn from (seed, s) too, so it does not depend on the process count.
"""

import functools
from typing import Any

import jax
import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from stylejax.data.builder import (
    FILE_FORMAT,
    check_resolution,
    default_data_dir,
    find_builder,
    has_class_labels,
)
from stylejax.data.digits import build_digits, digits_name
from stylejax.data.errors import DatasetError
from stylejax.data.prefetch import Prefetcher

# Domain separators of the numpy seed sequences, so that order and flips are independent draws.
_ORDER, _FLIP = 0, 1


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, size: int) -> np.ndarray:
    """The example order of one epoch; cached because consecutive steps share an epoch."""
    order = np.random.default_rng([seed, _ORDER, epoch]).permutation(size)
    order.setflags(write=False)
    return order


def _host_tensorflow() -> Any:
    """TensorFlow for decoding on the host; it must not take accelerator memory JAX needs."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TF already initialised its devices elsewhere in this process
        pass
    return tf


def _make_decoder(spec: dict, shape: tuple[int, int, int]) -> Any:
    """A compiled TF function: serialized examples + flip mask -> uint8 images, int labels.

    Parsing, PNG/JPEG decoding and flipping run in TF's C++ thread pool, in parallel across
    images and without the Python GIL, so they overlap with the JAX train step. Scaling to float
    is left to numpy, which measured faster than TF's element-wise ops here.
    """
    tf = _host_tensorflow()
    labelled = "label" in spec

    def decode_one(data_and_flip: tuple[Any, Any]) -> Any:
        data, flip = data_and_flip
        image = tf.io.decode_image(data, channels=shape[2], expand_animations=False)
        image = tf.ensure_shape(image, shape)
        return tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string),
                                  tf.TensorSpec([None], tf.bool)])
    def decode(records: Any, flips: Any) -> tuple[Any, Any]:
        example = tf.io.parse_example(records, spec)
        images = tf.map_fn(decode_one, (example["image"], flips), parallel_iterations=32,
                           fn_output_signature=tf.TensorSpec(shape, tf.uint8))
        return images, example["label"] if labelled else tf.zeros([0], tf.int64)

    return decode


def _open(name: str, data_dir: str) -> tuple[str, tfds.core.DatasetBuilder]:
    """(resolved name, builder) of a readable dataset, building the digits dataset on first use."""
    canonical = digits_name(name)
    if canonical is not None:
        name = canonical
        if not (epath.Path(data_dir) / name).exists():  # it appears only complete (renamed)
            build_digits(name, data_dir)
    builder = find_builder(name, data_dir)
    hint = (f"convert it with `python -m stylejax.data.prepare --source tfds:{name} "
            f"--name NEW_NAME --resolution R --data-dir {data_dir}`")
    file_format = builder.info.file_format
    if file_format is None or file_format.value != FILE_FORMAT:
        stored = file_format.value if file_format else "an unknown format"
        raise DatasetError(f"dataset {name!r} is stored as {stored}, but the input pipeline "
                           f"reads {FILE_FORMAT} by random access; {hint}")
    features = builder.info.features
    image = features["image"] if "image" in features.keys() else None
    if not isinstance(image, tfds.features.Image):
        raise DatasetError(f"dataset {name!r} has no 'image' feature to train on")
    height, width, _ = image.shape
    if height != width or height is None:
        raise DatasetError(f"dataset {name!r} has images of shape {image.shape}, not square with "
                           f"a fixed size; {hint}")
    try:
        check_resolution(height)
    except DatasetError as e:
        raise DatasetError(f"dataset {name!r}: {e}; {hint}") from None
    return name, builder


class InputPipeline:
    """Deterministic, sharded global batches of a TFDS dataset, with prefetching.

    `name` is a dataset prepared in `data_dir` (see `stylejax.data.prepare`), a TFDS catalogue
    dataset prepared there in the array_record format, or `digits` / `digits<R>` (built on first
    use). `data_dir` defaults to $STYLEJAX_DATA_DIR, $TFDS_DATA_DIR or ~/tensorflow_datasets.
    `split` takes TFDS split syntax ('train', 'test', 'train[:90%]'). The process index and count
    default to JAX's.
    """

    def __init__(self, name: str, *, global_batch_size: int, seed: int, split: str = "train",
                 data_dir: str | None = None, xflip: bool = False,
                 process_index: int | None = None, process_count: int | None = None):
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
        if not 0 <= process_index < process_count:
            raise DatasetError(f"process_index must be in [0, {process_count}), "
                               f"got {process_index}")
        if global_batch_size < 1 or global_batch_size % process_count:
            raise DatasetError(f"global_batch_size must be a positive multiple of the process "
                               f"count {process_count}, got {global_batch_size}")
        if seed < 0:
            raise DatasetError(f"seed must be a non-negative integer, got {seed}")
        self.data_dir = data_dir or default_data_dir()
        self.name, builder = _open(name, self.data_dir)
        self.split = split
        self.global_batch_size = global_batch_size
        self.local_batch_size = global_batch_size // process_count
        self.process_index, self.process_count = process_index, process_count
        self.seed, self.xflip = seed, xflip
        features = builder.info.features
        self._shape = features["image"].shape
        self._num_classes = features["label"].num_classes if has_class_labels(features) else 0
        try:
            self._source = builder.as_data_source(
                split=split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
        except (ValueError, KeyError) as e:
            reason = str(e).splitlines()[-1]  # TFDS's last line says what is wrong
            raise DatasetError(f"dataset {name!r}: cannot read split {split!r} (its splits: "
                               f"{', '.join(builder.info.splits)}): {reason}") from None
        if len(self._source) == 0:
            raise DatasetError(f"split {split!r} of dataset {name!r} is empty")
        keys = ("image", "label") if self._num_classes else ("image",)
        spec = {k: features.tf_example_spec[k] for k in keys}
        self._decode = _make_decoder(spec, self._shape)

    @property
    def resolution(self) -> int:
        return self._shape[0]

    @property
    def num_channels(self) -> int:
        return self._shape[2]

    @property
    def num_classes(self) -> int:
        """Number of classes for conditioning; 0 when the dataset is unlabelled."""
        return self._num_classes

    @property
    def num_examples(self) -> int:
        """Examples in the split; an epoch is this many stream positions."""
        return len(self._source)

    def _rows(self) -> slice:
        lo = self.process_index * self.local_batch_size
        return slice(lo, lo + self.local_batch_size)

    def indices(self, step: int) -> np.ndarray:
        """Indices (within the split) of the examples in this process's rows of batch `step`."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        rows = self._rows()
        positions = step * self.global_batch_size + np.arange(rows.start, rows.stop)
        epochs, offsets = np.divmod(positions, self.num_examples)
        out = np.empty_like(positions)
        for epoch in np.unique(epochs):
            mask = epochs == epoch
            out[mask] = _permutation(self.seed, int(epoch), self.num_examples)[offsets[mask]]
        return out

    def flips(self, step: int) -> np.ndarray:
        """Which of this process's rows of batch `step` are mirrored (all False without xflip)."""
        if not self.xflip:
            return np.zeros(self.local_batch_size, bool)
        draws = np.random.default_rng([self.seed, _FLIP, step]).random(self.global_batch_size)
        return draws[self._rows()] < 0.5

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows of the global batch of `step`.

        {"image": float32 [local_batch, H, W, C] in [-1, 1], "label": float32 one-hot
        [local_batch, num_classes] (width 0 when unlabelled)}.
        """
        records = self._source.__getitems__(self.indices(step).tolist())
        images, labels = self._decode(records, self.flips(step))
        images = images.numpy().astype(np.float32)
        images /= np.float32(127.5)  # a division, so that 255 maps to exactly 1
        images -= np.float32(1)
        if self._num_classes:
            onehot = np.eye(self._num_classes, dtype=np.float32)[labels.numpy()]
        else:
            onehot = np.zeros((self.local_batch_size, 0), np.float32)
        return {"image": images, "label": onehot}

    def iterate(self, start_step: int = 0, *, prefetch: int = 2, threads: int = 2) -> Prefetcher:
        """batch(start_step), batch(start_step + 1), ..., made `prefetch` steps ahead by
        `threads` background threads; close() it (or use `with`) when done."""
        return Prefetcher(self.batch, start_step, prefetch, threads)


def to_global(batch: dict[str, np.ndarray],
              sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
    """Lays each process's rows onto the devices as global arrays, e.g. with
    `NamedSharding(mesh, PartitionSpec('data'))` the batch axis is split over 'data'.

    Every process calls it with its own `batch(step)`; the global batch is the processes' rows
    together, each process's rows going to its own devices.
    """
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
