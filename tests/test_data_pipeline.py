"""The input pipeline: determinism, resumption, epochs, per-process shards, x-flips, errors.

Batch rows are identified by their pixels against the images written, not by the pipeline.
"""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from stylejax.data.errors import DatasetError
from stylejax.data.pipeline import InputPipeline, to_global
from stylejax.data.prepare import prepare
from tests.checkpoint_helpers import subprocess_env
from tests.data_helpers import random_images, write_folder

NUM = 12
IMAGES = random_images(NUM, 8, 8, seed=11)
LABELS = np.arange(NUM) % 4


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    write_folder(root / "toy_src", IMAGES, LABELS)
    write_folder(root / "plain_src", IMAGES[:5])
    prepare(str(root / "toy_src"), "toy", 8, data_dir=str(root / "data"))
    prepare(str(root / "plain_src"), "plain", 8, data_dir=str(root / "data"))
    return str(root / "data")


def pipeline(data_dir, name="toy", **kwargs) -> InputPipeline:
    kwargs = {"global_batch_size": 4, "seed": 0, "data_dir": data_dir} | kwargs
    return InputPipeline(name, **kwargs)


def as_uint8(images: np.ndarray) -> np.ndarray:
    return np.rint((images + 1) * 127.5).astype(np.uint8)


def identify(images: np.ndarray, originals: np.ndarray = IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """(index into `originals`, mirrored?) of each batch row, found by comparing pixels."""
    found = []
    for row in as_uint8(images):
        matches = [(i, mirrored) for i, original in enumerate(originals)
                   for mirrored in (False, True)
                   if np.array_equal(row, original[:, ::-1] if mirrored else original)]
        assert len(matches) == 1, f"row matches {matches}"
        found.append(matches[0])
    indices, mirrored = zip(*found, strict=True)
    return np.array(indices), np.array(mirrored)


def test_properties_and_batch_layout(data_dir):
    p = pipeline(data_dir)
    assert (p.resolution, p.num_channels, p.num_classes, p.num_examples) == (8, 3, 4, NUM)
    batch = p.batch(0)
    assert batch["image"].shape == (4, 8, 8, 3) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (4, 4) and batch["label"].dtype == np.float32
    assert -1 <= batch["image"].min() and batch["image"].max() <= 1


def test_rows_hold_stored_images_with_their_labels_and_indices(data_dir):
    p = pipeline(data_dir)
    for step in range(5):
        batch = p.batch(step)
        indices, mirrored = identify(batch["image"])
        assert not mirrored.any()
        np.testing.assert_array_equal(p.indices(step), indices)
        np.testing.assert_array_equal(batch["label"], np.eye(4)[LABELS[indices]])


def test_scaling_maps_0_and_255_to_minus_one_and_one(tmp_path):
    extremes = np.zeros((2, 4, 4, 3), np.uint8)
    extremes[1] = 255
    write_folder(tmp_path / "src", extremes)
    prepare(str(tmp_path / "src"), "extremes", 4, data_dir=str(tmp_path / "d"))
    p = InputPipeline("extremes", global_batch_size=2, seed=0, data_dir=str(tmp_path / "d"))
    images = p.batch(0)["image"]
    images = images[np.argsort(images.mean(axis=(1, 2, 3)))]
    assert np.all(images[0] == -1.0) and np.all(images[1] == 1.0)


def test_each_epoch_is_a_new_permutation_of_the_split(data_dir):
    p = pipeline(data_dir)  # 12 examples, batch 4: an epoch is 3 steps
    epochs = [np.concatenate([identify(p.batch(s)["image"])[0] for s in range(e * 3, e * 3 + 3)])
              for e in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(NUM))
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[1], epochs[2])


def test_batches_of_one_example_cover_the_split(data_dir):
    p = pipeline(data_dir, global_batch_size=1)
    order = [identify(p.batch(step)["image"])[0][0] for step in range(NUM)]
    assert sorted(order) == list(range(NUM))


def test_max_images_trains_on_the_first_images_only(data_dir):
    """The official --max-size: only the split's first 5 records ever appear, all of them."""
    p = pipeline(data_dir, max_images=5)
    assert p.num_examples == 5
    seen = np.concatenate([identify(p.batch(step)["image"])[0] for step in range(10)])
    assert set(seen) == set(range(5))
    np.testing.assert_array_equal(np.concatenate([p.indices(step) for step in range(10)]), seen)


def test_batches_may_span_epochs(data_dir):
    p = pipeline(data_dir, global_batch_size=8)  # step 1 holds positions 8..15: epochs 0 and 1
    stream = np.concatenate([identify(p.batch(s)["image"])[0] for s in range(3)])
    assert sorted(stream[:NUM]) == list(range(NUM))
    assert sorted(stream[NUM:]) == sorted(set(stream[NUM:]))  # no repeat inside epoch 1


def test_same_seed_and_step_give_the_same_batch(data_dir):
    a, b = pipeline(data_dir, xflip=True), pipeline(data_dir, xflip=True)
    for step in (0, 7, 1000):
        batch_a, batch_b = a.batch(step), b.batch(step)
        np.testing.assert_array_equal(batch_a["image"], batch_b["image"])
        np.testing.assert_array_equal(batch_a["label"], batch_b["label"])


def test_different_steps_and_seeds_differ(data_dir):
    a, b = pipeline(data_dir), pipeline(data_dir, seed=1)
    assert not np.array_equal(a.batch(0)["image"], a.batch(1)["image"])
    order_a = [identify(a.batch(s)["image"])[0] for s in range(3)]
    order_b = [identify(b.batch(s)["image"])[0] for s in range(3)]
    assert not all(np.array_equal(x, y) for x, y in zip(order_a, order_b, strict=True))


def test_a_resumed_run_sees_the_batches_of_an_uninterrupted_one(data_dir):
    with pipeline(data_dir, xflip=True).iterate(0, threads=3) as batches:
        uninterrupted = [next(batches) for _ in range(10)]
    with pipeline(data_dir, xflip=True).iterate(6, threads=3) as batches:  # a new process
        resumed = [next(batches) for _ in range(4)]
    for got, want in zip(resumed, uninterrupted[6:], strict=True):
        for key in ("image", "label"):
            np.testing.assert_array_equal(got[key], want[key])
    first_epoch = np.concatenate([identify(b["image"])[0] for b in uninterrupted[:3]])
    assert sorted(first_epoch) == list(range(NUM))


@pytest.mark.parametrize("process_count", [2, 3])
def test_processes_get_disjoint_parts_of_the_same_global_batch(data_dir, process_count):
    # Batch 6 of 12 examples: no batch spans two epochs, so no example can repeat inside one.
    whole = pipeline(data_dir, global_batch_size=6, xflip=True, process_index=0, process_count=1)
    parts = [pipeline(data_dir, global_batch_size=6, xflip=True, process_index=p,
                      process_count=process_count) for p in range(process_count)]
    for step in range(6):
        batches = [part.batch(step) for part in parts]
        rows = [identify(b["image"])[0] for b in batches]
        assert all(len(r) == 6 // process_count for r in rows)
        assert len(set(np.concatenate(rows))) == 6
        full = whole.batch(step)
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([b[key] for b in batches]), full[key])


def test_xflip_mirrors_about_half_the_rows_and_keeps_the_order(data_dir):
    flipped, plain = pipeline(data_dir, xflip=True), pipeline(data_dir)
    rows = [identify(flipped.batch(step)["image"]) for step in range(30)]  # 10 epochs
    for step, (indices, _) in enumerate(rows):
        np.testing.assert_array_equal(indices, identify(plain.batch(step)["image"])[0])
    order, mirrored = (np.concatenate(column) for column in zip(*rows, strict=True))
    assert 0.3 < np.mean(mirrored) < 0.7
    by_example = np.zeros((10, NUM), bool)
    for epoch in range(10):
        positions = slice(epoch * NUM, (epoch + 1) * NUM)
        by_example[epoch, order[positions]] = mirrored[positions]
    # an example is not mirrored the same way in every epoch
    assert not all(np.array_equal(by_example[0], e) for e in by_example[1:])


def test_iterate_gives_the_batches_from_its_start(data_dir):
    p = pipeline(data_dir, xflip=True)
    with p.iterate(5, prefetch=3) as batches:
        for step in range(5, 10):
            np.testing.assert_array_equal(next(batches)["image"], p.batch(step)["image"])


def test_negative_steps_are_refused(data_dir):
    p = pipeline(data_dir)
    for read in (p.batch, p.indices, p.iterate):
        with pytest.raises(ValueError, match="step must be >= 0"):
            read(-1)


def test_unlabelled_dataset_gives_zero_width_labels(data_dir):
    p = pipeline(data_dir, "plain", global_batch_size=3)
    assert p.num_classes == 0
    batch = p.batch(0)
    assert batch["label"].shape == (3, 0) and batch["label"].dtype == np.float32
    np.testing.assert_array_equal(as_uint8(batch["image"]), IMAGES[p.indices(0)])


def test_global_batch_larger_than_the_dataset(data_dir):
    p = pipeline(data_dir, "plain", global_batch_size=12)  # 5 examples
    counts = np.bincount(p.indices(0), minlength=5)
    assert counts.sum() == 12 and counts.min() >= 2


def test_to_global_keeps_the_rows_on_one_device(data_dir):
    p = pipeline(data_dir)
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    batch = p.batch(3)
    arrays = to_global(batch, NamedSharding(mesh, PartitionSpec("data")))
    for key in batch:
        assert isinstance(arrays[key], jax.Array)
        np.testing.assert_array_equal(np.asarray(arrays[key]), batch[key])


def test_to_global_shards_the_batch_over_eight_devices(data_dir):
    script = textwrap.dedent(f"""
        import jax, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec
        from stylejax.data.pipeline import InputPipeline, to_global
        p = InputPipeline("toy", global_batch_size=16, seed=0, data_dir={data_dir!r})
        batch = p.batch(2)
        mesh = Mesh(np.array(jax.devices()), ("data",))
        arrays = to_global(batch, NamedSharding(mesh, PartitionSpec("data")))
        image = arrays["image"]
        assert image.shape == (16, 8, 8, 3), image.shape
        assert len(image.addressable_shards) == 8
        for shard in image.addressable_shards:
            assert shard.data.shape == (2, 8, 8, 3)
            np.testing.assert_array_equal(np.asarray(shard.data), batch["image"][shard.index])
        np.testing.assert_array_equal(np.asarray(arrays["label"]), batch["label"])
        print("ok")
    """)
    env = subprocess_env(8)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


# --- bad input -----------------------------------------------------------------------------------


def test_missing_dataset_names_what_exists(data_dir):
    with pytest.raises(DatasetError, match=r"'nothere' is not prepared in .*found there: plain, "
                                           r"toy.*stylejax.data.prepare"):
        pipeline(data_dir, "nothere")


def test_catalogue_dataset_not_prepared_is_not_downloaded(tmp_path):
    with pytest.raises(DatasetError, match="'cifar10' is not prepared"):
        InputPipeline("cifar10", global_batch_size=2, seed=0, data_dir=str(tmp_path))
    assert os.listdir(tmp_path) == []


class _TfrecordBuilder(tfds.dataset_builders.AdhocBuilder, skip_registration=True):
    code_path = None  # see stylejax.data.builder._Builder


def test_dataset_in_tfrecord_format_says_how_to_convert(tmp_path):
    _TfrecordBuilder(
        name="records", version="1.0.0", data_dir=str(tmp_path),
        features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(8, 8, 3))}),
        split_datasets={"train": [(i, {"image": IMAGES[i]}) for i in range(3)]},
    ).download_and_prepare(file_format="tfrecord")
    with pytest.raises(DatasetError, match="stored as tfrecord.*--source tfds:records"):
        InputPipeline("records", global_batch_size=2, seed=0, data_dir=str(tmp_path))


@pytest.mark.parametrize("kwargs,message", [
    ({"global_batch_size": 5, "process_count": 2, "process_index": 0}, "multiple of the process"),
    ({"process_index": 2, "process_count": 2}, "process_index"),
    ({"seed": -1}, "seed"),
    ({"split": "validation"}, "cannot read split 'validation'.*splits: train"),
    ({"max_images": 0}, "max_images must be >= 1 or None, got 0"),
])
def test_bad_arguments_are_refused(data_dir, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        pipeline(data_dir, **kwargs)
