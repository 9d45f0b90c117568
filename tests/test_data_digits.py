"""The offline default dataset: scikit-learn's digits, built on first use, split 1617 / 180."""

import collections
import hashlib
import os
import socket

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from stylejax.data import pipeline as pipeline_module
from stylejax.data.errors import DatasetError
from stylejax.data.pipeline import InputPipeline
from tests.data_helpers import read_split


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Builds digits32 with the network cut off, and returns (data dir, its train pipeline)."""
    data_dir = str(tmp_path_factory.mktemp("digits"))
    with pytest.MonkeyPatch.context() as patch:
        def no_network(*args, **kwargs):
            raise AssertionError("the digits dataset must build without network access")
        patch.setattr(socket.socket, "connect", no_network)
        p = InputPipeline("digits", global_batch_size=8, seed=0, data_dir=data_dir)
    return data_dir, p


def fingerprint(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def expected_digits(resolution: int) -> tuple[list[str], np.ndarray]:
    """sklearn's digits scaled to 0..255, Lanczos-upscaled with PIL, grey to RGB: fingerprints."""
    digits = load_digits()
    grey = np.rint(digits.images * 255 / 16).astype(np.uint8)
    prints = []
    for image in grey:
        big = np.asarray(Image.fromarray(image).resize((resolution, resolution),
                                                       Image.Resampling.LANCZOS))
        prints.append(fingerprint(np.repeat(big[..., None], 3, axis=-1)))
    return prints, digits.target


def test_digits_builds_offline_with_the_documented_split(built):
    data_dir, p = built
    assert p.name == "digits32"
    assert (p.resolution, p.num_channels, p.num_classes, p.num_examples) == (32, 3, 10, 1617)
    held_out = InputPipeline("digits", global_batch_size=8, seed=0, split="test",
                             data_dir=data_dir)
    assert held_out.num_examples == 180


def test_digits_images_and_labels_are_sklearns(built):
    data_dir, _ = built
    prints, targets = expected_digits(32)
    train, train_labels = read_split(data_dir, "digits32", "train")
    test, test_labels = read_split(data_dir, "digits32", "test")
    stored = [fingerprint(i) for i in np.concatenate([train, test])]
    # Every sklearn digit exactly once over both splits: the splits partition the 1797 images.
    assert collections.Counter(stored) == collections.Counter(prints)
    label_of = dict(zip(prints, targets, strict=True))
    stored_labels = np.concatenate([train_labels, test_labels])
    assert all(label_of[f] == label for f, label in zip(stored, stored_labels, strict=True))
    assert set(test_labels) == set(range(10))  # the held-out split covers every class


def test_second_use_reuses_the_built_dataset(built, monkeypatch):
    data_dir, first = built

    def no_rebuild(*args):
        raise AssertionError("digits32 was built again")

    monkeypatch.setattr(pipeline_module, "build_digits", no_rebuild)
    again = InputPipeline("digits32", global_batch_size=8, seed=0, data_dir=data_dir)
    np.testing.assert_array_equal(again.batch(3)["image"], first.batch(3)["image"])


def test_other_resolutions_by_name(tmp_path):
    p = InputPipeline("digits8", global_batch_size=4, seed=0, data_dir=str(tmp_path))
    assert (p.name, p.resolution, p.num_examples) == ("digits8", 8, 1617)
    digits = load_digits()
    stored = np.rint((p.batch(0)["image"] + 1) * 127.5)
    native = np.rint(digits.images * 255 / 16)  # 8x8 is native: no resampling at all
    expected = native[np.sort(np.setdiff1d(np.arange(1797), _held_out(tmp_path)))]
    np.testing.assert_array_equal(stored[..., 0], expected[p.indices(0)])


def _held_out(data_dir) -> np.ndarray:
    """sklearn indices of the held-out split, found by matching the stored 8x8 images."""
    test, _ = read_split(data_dir, "digits8", "test")
    native = np.rint(load_digits().images * 255 / 16).astype(np.uint8)
    lookup = {fingerprint(image): i for i, image in enumerate(native)}
    return np.array([lookup[fingerprint(image[..., 0])] for image in test])


def test_digits_resolution_must_be_a_power_of_two(tmp_path):
    with pytest.raises(DatasetError, match="power of two"):
        InputPipeline("digits24", global_batch_size=4, seed=0, data_dir=str(tmp_path))


def test_data_dir_defaults_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEJAX_DATA_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    p = InputPipeline("digits4", global_batch_size=2, seed=0)
    assert p.data_dir == str(tmp_path / "mine")
    assert os.listdir(tmp_path) == ["mine"] and os.listdir(tmp_path / "mine") == ["digits4"]
    monkeypatch.delenv("STYLEJAX_DATA_DIR")
    with pytest.raises(DatasetError, match="not prepared in " + str(tmp_path / "tfds")):
        InputPipeline("elsewhere", global_batch_size=2, seed=0)
