"""An official network file through the commands users run: sample, evaluate, and fine-tuning
with stylejax.main --config.init_from, checked against the official code's outputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from stylejax import evaluate, sample
from stylejax.checkpoints import load_generator
from stylejax.data.prepare import prepare
from stylejax.sampling import make_grid, to_uint8, z_from_seeds
from tests import official_files as of
from tests.test_official import FIXTURES, TINY, snapshot, tiny_nets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(os.path.join(FIXTURES, "tiny_expected.npz")))


def official_uint8(images_nchw: np.ndarray) -> np.ndarray:
    """The official generate.py's PNG pixels: (x * 127.5 + 128) clamped, cast to uint8."""
    return np.clip(images_nchw * 127.5 + 128, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


def test_sample_seeds_are_the_official_pngs(tmp_path, expected, capsys):
    assert sample.main(["seeds", "--network", TINY, "--seeds", "0-3", "--outdir", str(tmp_path)]) == 0
    official = official_uint8(expected["G_ema/img_psi1_const"])
    for seed in range(4):
        assert np.abs(read_png(tmp_path / f"seed{seed:04d}.png") - official[seed]).max() <= 1


def test_sample_mixing_cell_is_the_official_style_mix(tmp_path, expected):
    """The figure's cell (row seed 0, column seed 1) with coarse styles (ws 0-3), psi 0.7."""
    assert sample.main(["mixing", "--network", TINY, "--row_seeds", "0", "--col_seeds", "1",
                        "--styles", "coarse", "--trunc", "0.7", "--outdir", str(tmp_path)]) == 0
    cell = read_png(tmp_path / "stylemix.png")[32:64, 32:64]
    assert np.abs(cell - official_uint8(expected["G_ema/mix_row0_col1_ws0-3"])[0]).max() <= 1


def test_load_generator_reads_a_network_file(expected):
    trained = load_generator(TINY)
    images = trained.G.apply(trained.variables, z_from_seeds([0, 1, 2, 3], 128), truncation_psi=0.7,
                             noise_mode="const")
    official = expected["G_ema/img_psi0.7_const"].transpose(0, 2, 3, 1)
    assert np.max(np.abs(np.asarray(images) - official)) / np.max(np.abs(official)) < 1e-4
    assert trained.config.model.conv_clamp == 256 and trained.config.resolution == 32


@pytest.mark.parametrize("mode_args", [
    ["seeds", "--seeds", "0"],
    ["interpolate", "--seeds", "0,1"],
])
def test_sample_refuses_a_malicious_file_in_one_line(tmp_path, capsys, mode_args):
    target, outdir = tmp_path / "pwned", tmp_path / "out"
    evil = tmp_path / "evil.pkl"
    of.write(evil, dict(G_ema=of.Call(of.Global("os", "system"), (f"touch {target}",))))
    assert sample.main([*mode_args, "--network", str(evil), "--outdir", str(outdir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused: it names the global os.system" in err[0]
    assert not target.exists() and not outdir.exists()


def test_sample_refuses_a_step_for_a_network_file(tmp_path, capsys):
    assert sample.main(["seeds", "--network", TINY, "--seeds", "0", "--step", "3",
                        "--outdir", str(tmp_path / "out")]) == 2
    assert "has no checkpoint steps: drop --step" in capsys.readouterr().err


def test_evaluate_scores_a_network_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STYLEJAX_DATA_DIR", str(tmp_path / "data"))
    args = ["--network", TINY, "--dataset", "digits", "--metrics", "fid_digits", "--num_samples", "64",
            "--cache_dir", str(tmp_path / "cache")]
    assert evaluate.main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["network"] == TINY and result["fid_digits"] > 0
    assert evaluate.main([*args[:3], "digits16", *args[4:]]) == 2
    assert "makes 32x32 images with 3 channels but dataset 'digits16' has 16x16" in capsys.readouterr().err


def main(tmp_path, *args):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "STYLEJAX_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "stylejax.main", "--config", os.path.join(REPO, "experiments", "default.py"),
           "--workdir", str(tmp_path / "run"), "--config.dataset=digits", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)


@pytest.mark.slow
def test_fine_tuning_starts_from_the_network_and_resumes(tmp_path):
    steps = ["--config.num_train_steps=2", "--config.log_every_steps=1", "--config.sample_every_steps=2",
             "--config.eval_every_steps=0", "--config.batch_size=8",
             "--config.sample_grid=(4, 2)", "--config.metrics_num_samples=64"]
    augment = ["--config.augment.mode=fixed", "--config.augment.pipe=blit",
               "--config.augment.p_from_network=True"]
    result = main(tmp_path, f"--config.init_from={TINY}", *steps, *augment)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "augmentation p starts at 0.3, the network file's" in result.stderr  # its augment pipe's
    run = tmp_path / "run"
    # The first grid is the imported G_ema on the grid's seeds, constant noise.
    trained = load_generator(TINY)
    images = to_uint8(np.asarray(trained.G.apply(trained.variables, z_from_seeds(range(8), 128),
                                                 noise_mode="const")))
    grid = make_grid(images, 4, gap=2)
    assert np.abs(read_png(run / "samples" / "step_0000000.png") - grid).max() <= 1
    tuned = load_generator(str(run))
    assert tuned.step == 2 and tuned.G.resolution == 32 and tuned.config.model.conv_clamp == 256
    # A rerun resumes from the workdir's own checkpoint (and, trained to the end, trains nothing),
    # not from the file.
    again = main(tmp_path, f"--config.init_from={TINY}", *steps, *augment)
    assert again.returncode == 0 and "resuming from the checkpoint of step 2" in again.stderr
    assert load_generator(str(run)).step == 2 and "initialising G, D" not in again.stderr


@pytest.mark.parametrize("make,args,message", [
    (None, ["--config.model.channel_base=4096"],
     "--config.model.channel_base=4096 conflicts with the network"),
    (None, ["--config.dataset=digits16"], "the network {path} makes 32x32 images; prepare the dataset at 32"),
    ("no_d", [], "has no G and no D: fine-tuning needs G, D and G_ema"),
    ("grey", ["--config.dataset=grey32", "--config.batch_size=8"],
     "has 0 classes and 3 image channels but the training data 0 and 1; prepare the dataset with "
     "--channels 3"),
    ("not_pickle", [], "is not a readable network pickle"),
])
def test_fine_tuning_refuses_bad_input_in_one_line(tmp_path, make, args, message):
    path = TINY
    if make == "no_d":
        path = str(tmp_path / "ema_only.pkl")
        of.write(path, snapshot(tiny_nets(("G_ema",))))
    elif make == "grey":
        images = tmp_path / "grey"
        images.mkdir()
        for i in range(8):
            Image.fromarray(np.full((32, 32), 30 * i, np.uint8)).save(images / f"{i}.png")
        prepare(str(images), "grey32", 32, data_dir=str(tmp_path / "data"), channels=1)
    elif make == "not_pickle":
        path = str(tmp_path / "notes.pkl")
        (tmp_path / "notes.pkl").write_text("hello")
    result = main(tmp_path, f"--config.init_from={path}", "--config.num_train_steps=1", *args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message.format(path=path) in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()
