"""python -m stylejax.project on the official tiny network: a generated image is projected back
(LPIPS falls), with every output file written; the schedule is the official one."""

import json
import os

import jax
import numpy as np
import pytest

from stylejax import project
from stylejax.checkpoints import load_generator
from stylejax.data.prepare import prepare
from stylejax.projection import Schedule, attribution, best_threshold, noise_regularization
from stylejax.sampling import save_png, to_uint8
from tests import vgg_files
from tests.data_helpers import random_images, write_folder

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "official", "tiny.pkl")


def test_the_schedule_ramps_as_the_official_projector():
    s = Schedule()
    lr = [float(s.learning_rate(step)) for step in (0, 25, 50, 500, 750, 875, 999)]
    # up linearly over the first 5%, flat, then down as half a cosine over the last 25%
    np.testing.assert_allclose(lr, [0, 0.05, 0.1, 0.1, 0.1, 0.05, 0.1 * (0.5 - 0.5 * np.cos(
        np.pi * 0.004))], rtol=1e-4, atol=1e-9)
    noise = [float(s.w_noise_scale(step, 2.0)) for step in (0, 375, 750, 900)]
    np.testing.assert_allclose(noise, [0.1, 0.1 * 0.25, 0, 0], atol=1e-7)


def test_noise_regularization_penalises_correlated_noise():
    rng = np.random.default_rng(0)
    white = rng.normal(size=(16, 16)).astype(np.float32)
    smooth = np.cumsum(np.cumsum(white, 0), 1)
    smooth = (smooth - smooth.mean()) / smooth.std()
    # closed form for one 8x8 level: the squared means of the products with the rolled map
    eight = rng.normal(size=(8, 8)).astype(np.float32)
    want = np.mean(eight * np.roll(eight, 1, 1)) ** 2 + np.mean(eight * np.roll(eight, 1, 0)) ** 2
    np.testing.assert_allclose(noise_regularization([eight]), want, rtol=1e-5)
    assert float(noise_regularization([smooth])) > 100 * float(noise_regularization([white]))


def test_the_threshold_best_separates_the_calibration_distances():
    assert best_threshold([0.1, 0.2, 0.3], [0.5, 0.6]) == (pytest.approx(0.4), 1.0)
    # overlapping: 0.2 and 0.55 both get 3 of 4 right; the lower one is taken
    assert best_threshold([0.1, 0.5], [0.3, 0.6]) == (pytest.approx(0.2), 0.75)
    near = attribution(0.15, np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6]))
    assert near["verdict"] == "likely made by this network"
    assert near["generated_at_least_as_far"] == pytest.approx(2 / 3)
    assert near["real_at_most_as_far"] == 0 and near["calibration_accuracy"] == 1
    assert attribution(0.45, np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6]))["verdict"] == (
        "unlikely made by this network")


def test_a_generated_image_projects_back_and_is_attributed(tmp_path, capsys):
    """One run: the target, 2 generated and 2 real calibration images in one compiled loop."""
    trained = load_generator(TINY)
    G = trained.G
    z = jax.random.normal(jax.random.key(7), (1, G.z_dim))
    image = np.asarray(G.apply(trained.variables, z, noise_mode="const"))[0]
    save_png(to_uint8(image), str(tmp_path / "face.png"))
    vgg16, lpips = vgg_files.write_weights(tmp_path)
    write_folder(tmp_path / "real", random_images(2, 32, 32))
    prepare(str(tmp_path / "real"), "real32", 32, data_dir=str(tmp_path / "data"))
    out = tmp_path / "out"
    status = project.main(["--network", TINY, "--target", str(tmp_path / "face.png"), "--outdir",
                           str(out), "--vgg16", vgg16, "--lpips", lpips, "--num_steps", "40",
                           "--attribute", "--dataset", "real32", "--split", "train", "--data_dir",
                           str(tmp_path / "data"), "--calibration", "2", "--cache_dir",
                           str(tmp_path / "cache")])
    assert status == 0, capsys.readouterr().err
    lines = capsys.readouterr().out.splitlines()
    names = ["projected_w.npz", "target.png", "proj.png", "side_by_side.png", "proj.mp4"]
    assert lines[:-1] == [str(out / f"face_{n}") for n in names]
    verdict = json.loads(lines[-1])
    (cache,) = (tmp_path / "cache").iterdir()
    with np.load(cache) as f:
        assert f["generated"].shape == f["real"].shape == (2,)
        assert verdict == {"target": "face", **attribution(verdict["lpips"], f["generated"],
                                                           f["real"])}
    with np.load(out / "face_projected_w.npz") as f:
        assert f["w"].shape == (1, G.num_ws, G.w_dim) and f["ws"].shape == (40, G.w_dim)
        np.testing.assert_array_equal(f["w"][0, -1], f["ws"][-1])
        distances = f["distances"]
    assert np.all(np.isfinite(distances))
    assert distances[-5:].mean() < 0.8 * distances[0], distances  # step 0: w_avg, lr 0
    assert os.path.getsize(out / "face_proj.mp4") > 0
