"""The prepare tool: folders and zips round-trip, options, bad input, atomic writes, the CLI."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stylejax.data import prepare as prepare_module
from stylejax.data.errors import DatasetError
from stylejax.data.prepare import main, prepare
from tests import data_helpers as helpers


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "datasets")


def test_folder_round_trip_keeps_pixels_labels_and_order(tmp_path, data_dir):
    images = helpers.random_images(12, 16, 16)
    labels = np.arange(12) % 3
    helpers.write_folder(tmp_path / "src", images, labels)
    summary = prepare(str(tmp_path / "src"), "faces", 16, data_dir=data_dir)
    assert summary.counts == {"train": 12} and summary.skipped == []
    assert summary.num_classes == 3
    stored, stored_labels = helpers.read_split(data_dir, "faces")
    np.testing.assert_array_equal(stored, images)  # box at native size: exact, sorted name order
    np.testing.assert_array_equal(stored_labels, labels)


def test_stylegan2_ada_zip_round_trip(tmp_path, data_dir):
    images = helpers.random_images(11, 8, 8, seed=1)
    labels = np.array([4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    helpers.write_zip(tmp_path / "ds.zip", images, labels)
    summary = prepare(str(tmp_path / "ds.zip"), "zipped", 8, data_dir=data_dir)
    assert summary.counts == {"train": 11} and summary.num_classes == 5
    stored, stored_labels = helpers.read_split(data_dir, "zipped")
    np.testing.assert_array_equal(stored, images)
    np.testing.assert_array_equal(stored_labels, labels)


def test_unlabelled_zip_has_no_label_feature(tmp_path, data_dir):
    helpers.write_zip(tmp_path / "ds.zip", helpers.random_images(3, 8, 8))
    assert prepare(str(tmp_path / "ds.zip"), "plain", 8, data_dir=data_dir).num_classes == 0
    stored, labels = helpers.read_split(data_dir, "plain")
    assert stored.shape == (3, 8, 8, 3) and labels is None


def test_null_labels_in_dataset_json_mean_unlabelled(tmp_path, data_dir):
    helpers.write_folder(tmp_path / "src", helpers.random_images(2, 8, 8))
    (tmp_path / "src" / "dataset.json").write_text('{"labels": null}')
    assert prepare(str(tmp_path / "src"), "nolabels", 8, data_dir=data_dir).num_classes == 0


@pytest.mark.parametrize("crop", ["center", "pad"])
def test_non_square_images_get_the_requested_size(tmp_path, data_dir, crop):
    images = np.full((3, 12, 24, 3), 200, np.uint8)
    helpers.write_folder(tmp_path / "src", images)
    prepare(str(tmp_path / "src"), "wide", 8, data_dir=data_dir, crop=crop)
    stored, _ = helpers.read_split(data_dir, "wide")
    assert stored.shape == (3, 8, 8, 3)
    if crop == "center":
        assert stored.min() == 200
    else:  # 24x24 canvas with 6 black rows above and below -> 2 of 8 rows each after box
        assert stored[:, :2].max() == 0 and stored[:, -2:].max() == 0
        assert stored[:, 2:6].min() == 200


def test_downscale_grey_and_max_images(tmp_path, data_dir):
    images = helpers.random_images(6, 32, 32, seed=2)
    helpers.write_folder(tmp_path / "src", images)
    summary = prepare(str(tmp_path / "src"), "small", 8, data_dir=data_dir, channels=1,
                      max_images=4, resize_filter="lanczos")
    assert summary.counts == {"train": 4}
    stored, _ = helpers.read_split(data_dir, "small")
    assert stored.shape == (4, 8, 8, 1)
    # The first four files, in order: compare against each source's mean brightness.
    luma = images.astype(float) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(stored.reshape(4, -1).mean(1), luma[:4].reshape(4, -1).mean(1),
                               atol=3)


def test_corrupt_and_truncated_images_are_skipped_and_counted(tmp_path, data_dir):
    images = helpers.random_images(6, 8, 8, seed=4)
    names = helpers.write_folder(tmp_path / "src", images)
    (tmp_path / "src" / "00000" / "garbage.png").write_bytes(b"\x89PNG but not really")
    truncated = helpers.png_bytes(helpers.random_images(1, 64, 64)[0])
    (tmp_path / "src" / "00001" / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    (tmp_path / "src" / "notes.txt").write_text("not an image, not counted")
    summary = prepare(str(tmp_path / "src"), "mixed", 8, data_dir=data_dir)
    assert summary.counts == {"train": 6}
    assert sorted(name for name, _ in summary.skipped) == ["00000/garbage.png", "00001/cut.png"]
    stored, _ = helpers.read_split(data_dir, "mixed")
    np.testing.assert_array_equal(stored, images)
    assert len(names) == 6


def test_corrupt_zip_member_is_skipped(tmp_path, data_dir):
    images = helpers.random_images(3, 8, 8, seed=5)
    helpers.write_zip(tmp_path / "ds.zip", images)
    raw = bytearray((tmp_path / "ds.zip").read_bytes())
    with zipfile.ZipFile(tmp_path / "ds.zip") as z:
        info = z.getinfo("00000/img00000001.png")
    data_start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[data_start + 40] ^= 0xFF  # the stored CRC no longer matches
    (tmp_path / "ds.zip").write_bytes(bytes(raw))
    summary = prepare(str(tmp_path / "ds.zip"), "crc", 8, data_dir=data_dir)
    assert [n for n, _ in summary.skipped] == ["00000/img00000001.png"]
    stored, _ = helpers.read_split(data_dir, "crc")
    np.testing.assert_array_equal(stored, images[[0, 2]])


def test_worker_processes_write_the_same_dataset(tmp_path, data_dir):
    images = helpers.random_images(9, 16, 16, seed=6)
    helpers.write_folder(tmp_path / "src", images)
    prepare(str(tmp_path / "src"), "serial", 8, data_dir=data_dir)
    prepare(str(tmp_path / "src"), "parallel", 8, data_dir=data_dir, workers=2)
    np.testing.assert_array_equal(helpers.read_split(data_dir, "serial")[0],
                                  helpers.read_split(data_dir, "parallel")[0])


class _TfrecordBuilder(tfds.dataset_builders.AdhocBuilder, skip_registration=True):
    code_path = None  # see stylejax.data.builder._Builder


def test_tfds_dataset_in_another_format_and_size_is_converted(tmp_path, data_dir):
    images = helpers.random_images(5, 12, 20, seed=7)
    labels = [0, 1, 1, 0, 1]
    _TfrecordBuilder(
        name="oddshape", version="2.0.0", data_dir=data_dir,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(num_classes=2)}),
        split_datasets={"train": [(i, {"image": images[i], "label": labels[i]})
                                  for i in range(4)],
                        "test": [(4, {"image": images[4], "label": labels[4]})]},
        disable_shuffling=True).download_and_prepare(file_format="tfrecord")
    summary = prepare("tfds:oddshape", "converted", 8, data_dir=data_dir, crop="center")
    assert summary.counts == {"train": 4, "test": 1} and summary.num_classes == 2
    stored, stored_labels = helpers.read_split(data_dir, "converted")
    np.testing.assert_array_equal(stored_labels, labels[:4])
    # The centre 12x12 of each 12x20 image, box-downscaled 12 -> 8.
    assert stored.shape == (4, 8, 8, 3)
    centre_means = images[:4, :, 4:16].reshape(4, -1).mean(1)
    np.testing.assert_allclose(stored.reshape(4, -1).mean(1), centre_means, atol=2)


# --- bad input: one clear error, nothing left behind ------------------------------------------


def assert_nothing_written(data_dir, keep=()):
    assert [e for e in helpers.dataset_entries(data_dir) if e not in keep] == []


def test_empty_folder_is_refused(tmp_path, data_dir):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="no images found in folder"):
        prepare(str(tmp_path / "empty"), "empty", 8, data_dir=data_dir)
    assert_nothing_written(data_dir)


def test_folder_of_only_unreadable_images_is_refused(tmp_path, data_dir):
    (tmp_path / "bad").mkdir()
    for i in range(3):
        (tmp_path / "bad" / f"{i}.png").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="none of the images"):
        prepare(str(tmp_path / "bad"), "bad", 8, data_dir=data_dir)
    assert_nothing_written(data_dir)


def test_unreadable_zip_is_refused(tmp_path, data_dir):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 this is not a zip at all")
    with pytest.raises(DatasetError, match="not a readable zip file"):
        prepare(str(tmp_path / "broken.zip"), "broken", 8, data_dir=data_dir)
    assert_nothing_written(data_dir)


def test_missing_source_is_refused(tmp_path, data_dir):
    with pytest.raises(DatasetError, match="does not exist"):
        prepare(str(tmp_path / "nowhere"), "nowhere", 8, data_dir=data_dir)


@pytest.mark.parametrize("resolution", [0, 2, 48, 100])
def test_resolution_must_be_a_power_of_two(tmp_path, data_dir, resolution):
    helpers.write_folder(tmp_path / "src", helpers.random_images(2, 8, 8))
    with pytest.raises(DatasetError, match="power of two"):
        prepare(str(tmp_path / "src"), "sizes", resolution, data_dir=data_dir)
    assert_nothing_written(data_dir)


@pytest.mark.parametrize("name,message", [("My-Faces", "not valid"), ("cifar10", "catalogue"),
                                          ("digits", "reserved"), ("digits64", "reserved")])
def test_bad_or_taken_names_are_refused(tmp_path, data_dir, name, message):
    helpers.write_folder(tmp_path / "src", helpers.random_images(2, 8, 8))
    with pytest.raises(DatasetError, match=message):
        prepare(str(tmp_path / "src"), name, 8, data_dir=data_dir)
    assert_nothing_written(data_dir)


def test_images_without_labels_in_dataset_json_are_refused(tmp_path, data_dir):
    helpers.write_folder(tmp_path / "src", helpers.random_images(3, 8, 8), labels=[0, 1, 2])
    extra = helpers.png_bytes(helpers.random_images(1, 8, 8)[0])
    (tmp_path / "src" / "00000" / "extra.png").write_bytes(extra)
    with pytest.raises(DatasetError, match="1 image.* no label.*extra.png"):
        prepare(str(tmp_path / "src"), "partial", 8, data_dir=data_dir)


@pytest.mark.parametrize("text", ['{"labels": [["a.png", 1.5]]}', "{not json", '{"other": 1}'])
def test_malformed_dataset_json_is_refused(tmp_path, data_dir, text):
    helpers.write_folder(tmp_path / "src", helpers.random_images(1, 8, 8))
    (tmp_path / "src" / "dataset.json").write_text(text)
    with pytest.raises(DatasetError, match="dataset.json"):
        prepare(str(tmp_path / "src"), "badjson", 8, data_dir=data_dir)


def test_existing_name_is_refused_unless_overwrite(tmp_path, data_dir):
    first, second = helpers.random_images(2, 8, 8, seed=8), helpers.random_images(3, 8, 8, seed=9)
    helpers.write_folder(tmp_path / "a", first)
    helpers.write_folder(tmp_path / "b", second)
    prepare(str(tmp_path / "a"), "taken", 8, data_dir=data_dir)
    with pytest.raises(DatasetError, match="already exists.*--overwrite"):
        prepare(str(tmp_path / "b"), "taken", 8, data_dir=data_dir)
    np.testing.assert_array_equal(helpers.read_split(data_dir, "taken")[0], first)
    prepare(str(tmp_path / "b"), "taken", 8, data_dir=data_dir, overwrite=True)
    np.testing.assert_array_equal(helpers.read_split(data_dir, "taken")[0], second)
    assert_nothing_written(data_dir, keep=("taken",))


def test_failure_while_writing_leaves_no_partial_dataset(tmp_path, data_dir, monkeypatch):
    old = helpers.random_images(2, 8, 8, seed=10)
    helpers.write_folder(tmp_path / "old", old)
    helpers.write_folder(tmp_path / "new", helpers.random_images(8, 8, 8))
    prepare(str(tmp_path / "old"), "kept", 8, data_dir=data_dir)
    calls = []
    real = prepare_module.try_prepare_image

    def failing(*args):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("disk on fire")
        return real(*args)

    monkeypatch.setattr(prepare_module, "try_prepare_image", failing)
    for name, overwrite in (("fresh", False), ("kept", True)):
        calls.clear()
        with pytest.raises(RuntimeError, match="disk on fire"):
            prepare(str(tmp_path / "new"), name, 8, data_dir=data_dir, overwrite=overwrite)
    assert_nothing_written(data_dir, keep=("kept",))  # no 'fresh', no hidden staging folder
    np.testing.assert_array_equal(helpers.read_split(data_dir, "kept")[0], old)


# --- the command line ---------------------------------------------------------------------------


def test_cli_prepares_and_reports(tmp_path, data_dir, capsys):
    names = helpers.write_folder(tmp_path / "src", helpers.random_images(4, 16, 16))
    (tmp_path / "src" / "bad.jpg").write_bytes(b"broken")
    labels = [[n, i % 2] for i, n in enumerate(names + ["bad.jpg"])]
    (tmp_path / "src" / "dataset.json").write_text(json.dumps({"labels": labels}))
    rc = main(["--source", str(tmp_path / "src"), "--name", "cli_set", "--resolution", "8",
               "--data_dir", data_dir, "--workers", "1"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "prepared cli_set: 4 train images of 8x8x3, 2 classes; skipped 1 unreadable" in out
    assert "bad.jpg" in err


@pytest.mark.parametrize("case", ["empty", "zip", "clash", "resolution"])
def test_cli_bad_input_is_one_line_and_non_zero(tmp_path, data_dir, capsys, case):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.zip").write_bytes(b"garbage")
    helpers.write_folder(tmp_path / "src", helpers.random_images(2, 8, 8))
    assert main(["--source", str(tmp_path / "src"), "--name", "taken", "--resolution", "8",
                 "--data_dir", data_dir]) == 0
    capsys.readouterr()
    source, name, resolution = {
        "empty": (tmp_path / "empty", "new", "8"), "zip": (tmp_path / "bad.zip", "new", "8"),
        "clash": (tmp_path / "src", "taken", "8"), "resolution": (tmp_path / "src", "new", "24"),
    }[case]
    rc = main(["--source", str(source), "--name", name, "--resolution", resolution,
               "--data_dir", data_dir])
    out, err = capsys.readouterr()
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert_nothing_written(data_dir, keep=("taken",))


def test_cli_as_a_process_exits_non_zero_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "stylejax.data.prepare", "--source", str(tmp_path / "missing"),
         "--name", "x", "--resolution", "8", "--data_dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=120,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: source {tmp_path / 'missing'} does "
                                                  "not exist"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_write_leaves_no_staging_folder(tmp_path, signum):
    """SIGTERM (a scheduler stopping the job) cleans up as Ctrl-C does: 128 + the signal, and
    nothing in the data dir, not even the hidden staging folder."""
    helpers.write_folder(tmp_path / "images", helpers.random_images(400, 64, 64))
    data_dir = tmp_path / "d"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stylejax.data.prepare", "--source", str(tmp_path / "images"),
         "--name", "slow", "--resolution", "512", "--workers", "1", "--data_dir", str(data_dir)],
        stderr=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    deadline = time.time() + 120
    while not any(e.endswith(".incomplete") for e in helpers.dataset_entries(data_dir)):
        assert proc.poll() is None and time.time() < deadline, "no staging folder appeared"
        time.sleep(0.01)
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == 128 + signum
    assert "interrupted; nothing was written" in proc.stderr.read()
    assert helpers.dataset_entries(data_dir) == []
