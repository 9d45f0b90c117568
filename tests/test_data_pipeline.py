"""The input pipeline: determinism, epochs, per-process shards, x-flips, prefetch, errors."""

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


def test_properties_and_batch_layout(data_dir):
    p = pipeline(data_dir)
    assert (p.resolution, p.num_channels, p.num_classes, p.num_examples) == (8, 3, 4, NUM)
    batch = p.batch(0)
    assert batch["image"].shape == (4, 8, 8, 3) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (4, 4) and batch["label"].dtype == np.float32
    assert -1 <= batch["image"].min() and batch["image"].max() <= 1


def test_batch_holds_the_indexed_images_and_labels(data_dir):
    p = pipeline(data_dir)
    for step in range(5):
        batch, indices = p.batch(step), p.indices(step)
        np.testing.assert_array_equal(as_uint8(batch["image"]), IMAGES[indices])
        np.testing.assert_array_equal(batch["label"], np.eye(4)[LABELS[indices]])


def test_scaling_maps_0_and_255_to_minus_one_and_one(tmp_path):
    extremes = np.zeros((2, 4, 4, 3), np.uint8)
    extremes[1] = 255
    write_folder(tmp_path / "src", extremes)
    prepare(str(tmp_path / "src"), "extremes", 4, data_dir=str(tmp_path / "d"))
    p = InputPipeline("extremes", global_batch_size=2, seed=0, data_dir=str(tmp_path / "d"))
    images = p.batch(0)["image"][np.argsort(p.indices(0))]
    assert np.all(images[0] == -1.0) and np.all(images[1] == 1.0)


def test_each_epoch_is_a_permutation_of_the_split(data_dir):
    p = pipeline(data_dir)  # 12 examples, batch 4: an epoch is 3 steps
    epochs = [np.concatenate([p.indices(s) for s in range(e * 3, e * 3 + 3)]) for e in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(NUM))
    assert not np.array_equal(epochs[0], epochs[1])


def test_batches_may_span_epochs(data_dir):
    p = pipeline(data_dir, global_batch_size=8)  # step 1 holds positions 8..15: epochs 0 and 1
    stream = np.concatenate([p.indices(0), p.indices(1), p.indices(2)])
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
    assert not np.array_equal(a.indices(0), a.indices(1))
    assert not all(np.array_equal(a.indices(s), b.indices(s)) for s in range(3))


def test_two_processes_get_disjoint_halves_of_the_global_batch(data_dir):
    # Batch 6 of 12 examples: no batch spans two epochs, so no example can repeat inside one.
    whole = pipeline(data_dir, global_batch_size=6, xflip=True, process_index=0, process_count=1)
    halves = [pipeline(data_dir, global_batch_size=6, xflip=True, process_index=p,
                       process_count=2) for p in (0, 1)]
    for step in range(6):
        first, second = (h.indices(step) for h in halves)
        assert len(first) == len(second) == 3
        assert not set(first) & set(second)
        np.testing.assert_array_equal(np.concatenate([first, second]), whole.indices(step))
        parts = [h.batch(step) for h in halves]
        full = whole.batch(step)
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([q[key] for q in parts]), full[key])


def test_xflip_mirrors_exactly_the_drawn_rows(data_dir):
    flipped, plain = pipeline(data_dir, xflip=True), pipeline(data_dir)
    draws = []
    for step in range(30):
        mask = flipped.flips(step)
        draws.append(mask)
        got, ref = flipped.batch(step)["image"], plain.batch(step)["image"]
        np.testing.assert_array_equal(got[mask], ref[mask][:, :, ::-1])
        np.testing.assert_array_equal(got[~mask], ref[~mask])
    assert 0.3 < np.mean(draws) < 0.7
    assert not plain.flips(0).any()


def test_iterate_prefetches_the_same_batches_from_any_start(data_dir):
    p = pipeline(data_dir, xflip=True)
    with p.iterate(5, prefetch=3) as it:
        for step in range(5, 10):
            np.testing.assert_array_equal(next(it)["image"], p.batch(step)["image"])
    with pytest.raises(StopIteration):
        next(it)


def test_iterate_raises_errors_of_the_background_thread(data_dir):
    p = pipeline(data_dir)

    def failing(step):
        if step == 2:
            raise OSError("disk gone")
        return step

    p.batch = failing
    it = p.iterate(0)
    assert [next(it), next(it)] == [0, 1]
    with pytest.raises(OSError, match="disk gone"):
        next(it)


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
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
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
])
def test_bad_arguments_are_refused(data_dir, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        pipeline(data_dir, **kwargs)
