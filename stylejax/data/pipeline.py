"""The input pipeline: Grain over TFDS array_record data; batch s is a function of (seed, s).

A Grain `MapDataset` reads the split by random access. `shuffle().repeat()` makes an endless
stream in which epoch e is a permutation of the split drawn from (seed, e), and a `random_map`
draws each stream position's x-flip from (seed, position). The global batch of step s holds
positions s*B ... s*B + B - 1; process p of P takes rows [p*B/P, (p+1)*B/P) of it (every P-th
chunk of B/P positions, from the p-th), so neither order nor flips depend on the process count.

The data position is restored without iterator state: the dataset of batches is indexed by step,
and `iterate(start)` slices it at the checkpoint's step, so the step is all a checkpoint holds
and a resumed run sees exactly the batches of an uninterrupted one.

Decoding stays our compiled TF function, in a Grain map: Grain with TFDS's own numpy decoding
measured 2.5k vs 10k images/s at 32x32, 640 vs 1,020 at 256x256 (benchmarks/bench_input.py
--tfds_decoding, 2 shared cores). Grain's per-example Python (index shuffle, flip draw, read)
holds the GIL: 32x32 gives ~10k images/s where the former hand-written reader gave 15-18k;
256x256 is decode-bound and unchanged.
"""

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import grain
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

Batch = dict[str, np.ndarray]


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
            f"--name NEW_NAME --resolution R --data_dir {data_dir}`")
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
    """Deterministic, sharded global batches of a TFDS dataset, read and prefetched by Grain.

    `name` is a dataset prepared in `data_dir` (see `stylejax.data.prepare`), a TFDS catalogue
    dataset prepared there in the array_record format, or `digits` / `digits<R>` (built on first
    use). `data_dir` defaults to $STYLEJAX_DATA_DIR, $TFDS_DATA_DIR or ~/tensorflow_datasets.
    `split` takes TFDS split syntax ('train', 'test', 'train[:90%]'); `max_images` keeps only its
    first that many records (the official --max-size). The process index and count default to
    JAX's.
    """

    def __init__(self, name: str, *, global_batch_size: int, seed: int, split: str = "train",
                 data_dir: str | None = None, xflip: bool = False, max_images: int | None = None,
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
            source = builder.as_data_source(
                split=split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
        except (ValueError, KeyError) as e:
            reason = str(e).splitlines()[-1]  # TFDS's last line says what is wrong
            raise DatasetError(f"dataset {name!r}: cannot read split {split!r} (its splits: "
                               f"{', '.join(builder.info.splits)}): {reason}") from None
        if len(source) == 0:
            raise DatasetError(f"split {split!r} of dataset {name!r} is empty")
        records = grain.MapDataset.source(source)
        if max_images is not None:
            if max_images < 1:
                raise DatasetError(f"max_images must be >= 1 or None, got {max_images}")
            records = records[:max_images]
        self._num_examples = len(records)
        keys = ("image", "label") if self._num_classes else ("image",)
        self._decode = _make_decoder({k: features.tf_example_spec[k] for k in keys}, self._shape)
        # Explicit seeds: the same `shuffle` on the indices and on the records gives the same order.
        order_seed, flip_seed = map(int, np.random.SeedSequence(seed).generate_state(2))
        self._indices = self._own_rows(
            grain.MapDataset.range(len(records)).shuffle(order_seed).repeat())
        records = (records.shuffle(order_seed).repeat()
                   .random_map(self._draw_flip, seed=flip_seed))
        self._batches = self._own_rows(records, _records_and_flips).map(self._decode_batch)

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
        return self._num_examples

    def _own_rows(self, stream: grain.MapDataset,
                  batch_fn: Callable[[Sequence[Any]], Any] | None = None) -> grain.MapDataset:
        """This process's rows of each global batch of the stream, indexed by step: the global
        batch is P chunks of local_batch_size positions, and this process takes its own chunk."""
        # drop_remainder, or Grain counts the endless stream's batches by float division,
        # which overflows for batches of one
        chunks = stream.batch(self.local_batch_size, drop_remainder=True, batch_fn=batch_fn)
        return chunks[self.process_index::self.process_count]

    def _draw_flip(self, record: bytes, rng: np.random.Generator) -> tuple[bytes, bool]:
        """Grain seeds `rng` from (seed, stream position): a row's flip is fixed by its place."""
        return record, self.xflip and bool(rng.random() < 0.5)

    def _decode_batch(self, records_and_flips: tuple[list[bytes], np.ndarray]) -> Batch:
        """Serialized examples -> images scaled to [-1, 1] and one-hot labels."""
        images, labels = self._decode(*records_and_flips)
        images = images.numpy().astype(np.float32)
        images /= np.float32(127.5)  # a division, so that 255 maps to exactly 1
        images -= np.float32(1)
        if self._num_classes:
            onehot = np.eye(self._num_classes, dtype=np.float32)[labels.numpy()]
        else:
            onehot = np.zeros((len(images), 0), np.float32)
        return {"image": images, "label": onehot}

    def indices(self, step: int) -> np.ndarray:
        """Indices (within the split) of the examples in this process's rows of batch `step`."""
        _check_step(step)
        return self._indices[step]

    def batch(self, step: int) -> Batch:
        """This process's rows of the global batch of `step`.

        {"image": float32 [local_batch, H, W, C] in [-1, 1], "label": float32 one-hot
        [local_batch, num_classes] (width 0 when unlabelled)}.
        """
        _check_step(step)
        return self._batches[step]

    def iterate(self, start_step: int = 0, *, prefetch: int = 2,
                threads: int = 2) -> contextlib.closing[grain.DatasetIterator]:
        """batch(start_step), batch(start_step + 1), ... made `prefetch` steps ahead by `threads`
        Grain threads, starting now; use it as `with data.iterate(step) as batches:`."""
        _check_step(start_step)
        options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
        batches = iter(self._batches[start_step:].to_iter_dataset(options))
        batches.start_prefetch()  # the first batches are made while the train step compiles
        return contextlib.closing(batches)


def _check_step(step: int) -> None:
    if step < 0:  # Grain would map it to some far position of the endless stream
        raise ValueError(f"step must be >= 0, got {step}")


def _records_and_flips(rows: Sequence[tuple[bytes, bool]]) -> tuple[list[bytes], np.ndarray]:
    """Grain's default batching would pad the records into a fixed-width bytes array."""
    return [record for record, _ in rows], np.array([flip for _, flip in rows], bool)


def to_global(batch: dict[str, np.ndarray],
              sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
    """Lays each process's rows onto the devices as global arrays, e.g. with
    `NamedSharding(mesh, PartitionSpec('data'))` the batch axis is split over 'data'.

    Every process calls it with its own `batch(step)`; the global batch is the processes' rows
    together, each process's rows going to its own devices.
    """
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
