"""The offline digits metrics: the classifier, the cached dataset statistics, the separation of
real / blurred / noise digits, generators on 1 vs 8 devices, and python -m stylejax.evaluate."""

import glob
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from stylejax import evaluate
from stylejax.data.pipeline import InputPipeline
from stylejax.metrics import digits_classifier, features
from stylejax.metrics.evaluator import Evaluator
from stylejax.metrics.inception_weights import URL
from stylejax.networks import build_networks
from stylejax.train.programs import make_mesh
from stylejax.train.state import create_train_state
from tests.checkpoint_helpers import subprocess_env
from tests.metrics_helpers import metrics_config, tiny_generator, tiny_generator_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "tests", "scripts", "metrics_stats.py")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("data"))
    InputPipeline("digits", global_batch_size=8, seed=0, data_dir=path)  # builds digits32
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("metrics_cache"))


@pytest.fixture(scope="module")
def evaluator(data_dir, cache_dir) -> Evaluator:
    """Scores images only; trains and caches the classifier and the train-split statistics."""
    return Evaluator(metrics_config(data_dir, cache_dir), None, make_mesh())


@pytest.fixture(scope="module")
def test_split(data_dir):
    return digits_classifier.load_split("digits", "test", data_dir)


def batches(images: np.ndarray, size: int = 64) -> list[np.ndarray]:
    return [images[i:i + size] for i in range(0, len(images), size)]


def test_classifier_is_accurate_on_held_out_digits(evaluator, test_split):
    images, labels = test_split
    params = evaluator.runner.extractors["digits"].params["params"]
    accuracy = digits_classifier.accuracy(params, images, labels)
    print(f"\ndigits classifier: held-out accuracy {accuracy:.4f} on {len(labels)} test images")
    assert accuracy >= 0.97


def test_classifier_training_is_deterministic(data_dir, monkeypatch):
    images, labels = digits_classifier.load_split("digits", "train", data_dir)
    monkeypatch.setattr(digits_classifier, "EPOCHS", 1)
    a = digits_classifier.train_classifier(images[:256], labels[:256])
    b = digits_classifier.train_classifier(images[:256], labels[:256])
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_second_use_reads_the_caches(evaluator, data_dir, cache_dir, test_split, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(digits_classifier, "train_classifier", fail)
    monkeypatch.setattr(features.FeatureRunner, "stats", fail)
    again = Evaluator(metrics_config(data_dir, cache_dir), None, make_mesh())
    np.testing.assert_array_equal(again.reference["digits"].cov, evaluator.reference["digits"].cov)
    np.testing.assert_array_equal(again.reference["digits"].features,
                                  evaluator.reference["digits"].features)


def test_cache_keys_follow_split_and_dataset_files(evaluator, data_dir, cache_dir):
    config = metrics_config(data_dir, cache_dir)
    config.metrics_split = "test"
    Evaluator(config, None, make_mesh())
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(cache_dir, "stats_*")))
    assert len(names) == 2 and names[0].startswith("stats_digits32_test_32_digits_")
    # Re-preparing a dataset changes its files, hence the key: no stale statistics are used.
    data = InputPipeline("digits", global_batch_size=8, seed=0, data_dir=data_dir)
    before = features.dataset_fingerprint(data)
    info = glob.glob(os.path.join(data_dir, "digits32", "*", "dataset_info.json"))[0]
    os.utime(info, ns=(1, 1))
    assert features.dataset_fingerprint(data) != before


def test_digits_fid_separates_real_blurred_and_noise(evaluator, test_split):
    images, _ = test_split
    rng = np.random.default_rng(0)
    cases = {
        "held-out real digits (the floor)": images,
        "blurred held-out digits (sigma 1 px)": gaussian_filter(images, (0, 1, 1, 0)),
        "blurred held-out digits (sigma 2 px)": gaussian_filter(images, (0, 2, 2, 0)),
        "uniform noise": rng.uniform(-1, 1, images.shape).astype(np.float32),
    }
    scores = {name: evaluator.score_images(batches(x)) for name, x in cases.items()}
    print("\nvs digits train split (1617 images), 180 images each:")
    for name, s in scores.items():
        print(f"  {name:40s} fid_digits {s['fid_digits']:8.3f}  kid_digits {s['kid_digits']:8.4f}")
    fid = [s["fid_digits"] for s in scores.values()]
    kid = [s["kid_digits"] for s in scores.values()]
    assert 0 <= fid[0] and 2 * fid[0] < fid[1] < fid[2] / 4 < fid[3] / 20
    assert abs(kid[0]) < kid[1] / 2 and kid[1] < kid[2] / 4 < kid[3] / 10


def test_a_generator_is_scored_the_same_every_time(data_dir, cache_dir):
    G, variables = tiny_generator()
    ev = Evaluator(metrics_config(data_dir, cache_dir, num_samples=70, batch_size=32), G,
                   make_mesh())
    first = ev(variables, step=3)
    assert first == ev(variables, step=3)
    assert set(first) == {"fid_digits", "kid_digits"} and first["fid_digits"] > 1


@pytest.mark.slow
def test_eight_devices_give_the_statistics_of_one(evaluator, data_dir, cache_dir, tmp_path):
    classifier = glob.glob(os.path.join(cache_dir, "digits_classifier_*"))  # the fixture's
    procs = {}
    for devices in (1, 8):
        cache = tmp_path / f"cache{devices}"  # the classifier, but no dataset statistics
        cache.mkdir()
        shutil.copy(classifier[0], cache)
        env = subprocess_env(devices)
        procs[devices] = subprocess.Popen(
            [sys.executable, SCRIPT, "--out", str(tmp_path / f"{devices}.npz"), "--data_dir",
             data_dir, "--cache_dir", str(cache)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for proc in procs.values():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    one, eight = np.load(tmp_path / "1.npz"), np.load(tmp_path / "8.npz")
    assert (int(one["devices"]), int(eight["devices"])) == (1, 8)
    for key in ("ref_mean", "ref_cov", "gen_mean", "gen_cov"):
        scale = np.max(np.abs(one[key]))
        assert np.max(np.abs(one[key] - eight[key])) < 1e-5 * scale, key
    for key in ("fid_digits", "kid_digits"):
        assert float(eight[key]) == pytest.approx(float(one[key]), rel=1e-4, abs=1e-6), key


# --- python -m stylejax.evaluate -----------------------------------------------------------------


def write_pngs(folder, images: np.ndarray) -> None:
    os.makedirs(folder, exist_ok=True)
    pixels = np.rint((images + 1) * 127.5).astype(np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(os.path.join(folder, f"{i:05d}.png"))


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = evaluate.main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_scores_a_folder_like_the_evaluator(evaluator, data_dir, cache_dir, test_split,
                                                tmp_path, capsys):
    images, _ = test_split
    write_pngs(tmp_path / "pngs", images)
    rc, out, err = run_cli(capsys, "--images", str(tmp_path / "pngs"), "--data_dir", data_dir,
                           "--cache_dir", cache_dir)
    assert rc == 0, err
    result = json.loads(out)
    expected = evaluator.score_images(batches(images))
    assert result["fid_digits"] == pytest.approx(expected["fid_digits"], rel=1e-6)
    assert result["kid_digits"] == pytest.approx(expected["kid_digits"], rel=1e-6, abs=1e-9)


def test_cli_resizes_images_of_another_resolution_with_a_note(data_dir, cache_dir, test_split,
                                                              tmp_path, capsys):
    images, _ = test_split
    big = np.repeat(np.repeat(images[:40], 2, axis=1), 2, axis=2)  # 64x64, box-downscales back
    write_pngs(tmp_path / "big", big)
    rc, out, err = run_cli(capsys, "--images", str(tmp_path / "big"), "--data_dir", data_dir,
                           "--cache_dir", cache_dir)
    assert rc == 0, err
    assert "is 64x64, not 32x32 like the dataset" in err and "resized" in err
    assert json.loads(out)["fid_digits"] < 5


@pytest.mark.parametrize("case", ["empty", "unreadable", "missing", "no_weights", "bad_metric"])
def test_cli_bad_input_is_one_line_and_non_zero(data_dir, cache_dir, tmp_path, capsys, case):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    folder, extra, message = {
        "empty": ("empty", [], "no images found in folder"),
        "unreadable": ("broken", [], "no readable images in"),
        "missing": ("nowhere", [], "does not exist"),
        "no_weights": ("broken", ["--metrics", "fid"], f"download {URL}"),
        "bad_metric": ("broken", ["--metrics", "fid50k"], "unknown metric 'fid50k'"),
    }[case]
    rc, out, err = run_cli(capsys, "--images", str(tmp_path / folder), "--data_dir", data_dir,
                           "--cache_dir", cache_dir, *extra)
    assert rc == 2 and out == ""
    lines = [line for line in err.splitlines() if not line.startswith("WARNING: skipped")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_cli_as_a_process_exits_non_zero_without_traceback(data_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "stylejax.evaluate", "--images", str(tmp_path), "--metrics", "kid",
         "--inception", str(tmp_path / "inception-2015-12-05.tgz"), "--data_dir", data_dir],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "inception-2015-12-05.tgz does not exist" in errors[0]
    assert "Traceback" not in result.stderr


def test_cli_scores_every_checkpoint_of_a_run_like_training(data_dir, cache_dir, tmp_path,
                                                            capsys):
    from stylejax.checkpoints import Checkpoints

    config = tiny_generator_config()
    config.dataset, config.data_dir = "digits", data_dir
    config.metrics = ("fid_digits", "kid_digits")
    config.metrics_num_samples, config.metrics_batch_size = 64, 32
    config.metrics_cache_dir = cache_dir
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(config.to_json_best_effort())
    G, D = build_networks(config, 0, 3)
    state = create_train_state(config, G, D, jax.random.key(0))
    states = {2: state, 4: state.replace(ema_params=jax.tree_util.tree_map(lambda p: p * 0.5,
                                                                           state.ema_params))}
    with Checkpoints(str(workdir), metadata={"c_dim": 0, "img_channels": 3}) as checkpoints:
        for step, s in states.items():
            checkpoints.save(step, s, force=True)
    rc, out, err = run_cli(capsys, "--workdir", str(workdir), "--all_steps")
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["step"] for line in lines] == [2, 4]
    evaluator = Evaluator(config, G, make_mesh())
    for line in lines:
        expected = evaluator(states[line["step"]].generator_variables(ema=True))
        assert line["fid_digits"] == pytest.approx(expected["fid_digits"], rel=1e-5)
        assert line["kid_digits"] == pytest.approx(expected["kid_digits"], rel=1e-4, abs=1e-7)
    assert lines[0]["fid_digits"] != lines[1]["fid_digits"]
