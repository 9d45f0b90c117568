"""python -m stylejax.sample: each mode against the networks themselves, and every bad input."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from stylejax.figures import Renderer
from stylejax.models import blend_styles, mix_styles
from stylejax.networks import build_networks
from stylejax.sample import main
from stylejax.sampling import GAP_VALUE, make_grid, to_uint8, z_from_seeds
from tests.checkpoint_helpers import save_init_checkpoint, snapshot, truncate_arrays
from tests.train_helpers import tiny_config

RES = 16  # tiny_config's resolution: 6 ws, no 'fine' styles


def generator(workdir, c_dim: int = 0):
    """(G, G_ema's variables) of a run directory with an initial, then changed, state."""
    config = tiny_config()
    state = save_init_checkpoint(workdir, config, step=10, c_dim=c_dim)
    G, _ = build_networks(config, c_dim, 3)
    return G, {"params": state.ema_params, "stats": state.g_stats, "noise_consts": state.noise_consts}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    return (workdir, *generator(workdir))


def sample(*args) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as e:  # argparse's errors
        return e.code


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def cells(picture: np.ndarray, cols: int) -> list[np.ndarray]:
    """The RES x RES cells of a grid, row-major."""
    rows = picture.shape[0] // RES
    return [picture[r * RES:(r + 1) * RES, c * RES:(c + 1) * RES] for r in range(rows) for c in range(cols)]


def expected(G, variables, ws=None, seed=None, c=None, noise_mode="const", noise_seed=0):
    """The image drawn by the plain (un-jitted) networks from styles or from a seed's z."""
    if ws is None:
        ws = G.apply(variables, jnp.asarray(z_from_seeds([seed], G.z_dim)), c, method=G.map_latents)
    key = jax.random.fold_in(jax.random.key(0), noise_seed)
    return to_uint8(G.apply(variables, ws, noise_mode, rngs={"noise": key}, method=G.synthesize))[0]


def styles(G, variables, seed, psi=1.0):
    return G.apply(variables, jnp.asarray(z_from_seeds([seed], G.z_dim)), truncation_psi=psi,
                   method=G.map_latents)


def test_seed_images_are_the_generators_images_of_the_official_latents(run, tmp_path):
    workdir, G, variables = run
    assert sample("seeds", "--workdir", workdir, "--outdir", tmp_path, "--seeds", "0-2,42") == 0
    assert sorted(os.listdir(tmp_path)) == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0042.png"]
    for seed in (0, 1, 2, 42):
        np.testing.assert_array_equal(read(tmp_path / f"seed{seed:04d}.png"),
                                      expected(G, variables, seed=seed))
    # z of seed 42 is numpy's RandomState(42).randn, as in the official generate.py.
    official = np.random.RandomState(42).randn(32).astype(np.float32)
    np.testing.assert_array_equal(z_from_seeds([42], 32)[0], official)


def test_grid_holds_the_seed_images_row_major(run, tmp_path):
    workdir, G, variables = run
    assert sample("grid", "--workdir", workdir, "--outdir", tmp_path, "--seeds", "3-7", "--cols", 2) == 0
    grid = read(tmp_path / "grid.png")
    assert grid.shape == (3 * RES, 2 * RES, 3)
    for cell, seed in zip(cells(grid, 2), [3, 4, 5, 6, 7], strict=False):
        np.testing.assert_array_equal(cell, expected(G, variables, seed=seed))
    assert not cells(grid, 2)[5].any()  # the unused cell is black


@pytest.mark.parametrize("group, cutoff, column_first", [("coarse", 4, True), ("middle", 4, False)])
def test_style_mixing_rows_keep_their_styles_and_take_the_columns_group(run, tmp_path, group, cutoff,
                                                                       column_first):
    workdir, G, variables = run
    rows, cols = [11, 12], [21, 22, 23]
    assert sample("mixing", "--workdir", workdir, "--outdir", tmp_path, "--row_seeds", "11-12",
                  "--col_seeds", "21-23", "--styles", group) == 0
    figure = cells(read(tmp_path / "stylemix.png"), len(cols) + 1)
    assert len(figure) == (len(rows) + 1) * (len(cols) + 1) and not figure[0].any()
    for j, c in enumerate(cols):  # the top row: the column seeds themselves
        np.testing.assert_array_equal(figure[1 + j], expected(G, variables, seed=c))
    for i, r in enumerate(rows):
        row = figure[(i + 1) * (len(cols) + 1):(i + 2) * (len(cols) + 1)]
        np.testing.assert_array_equal(row[0], expected(G, variables, seed=r))
        for j, c in enumerate(cols):
            ws_r, ws_c = styles(G, variables, r), styles(G, variables, c)
            # coarse: ws 0-3 from the column, 4-5 from the row; middle: the other way round.
            mixed = mix_styles(ws_c, ws_r, cutoff) if column_first else mix_styles(ws_r, ws_c, cutoff)
            np.testing.assert_array_equal(row[1 + j], expected(G, variables, ws=mixed, noise_seed=r))
            assert (row[1 + j] != row[0]).any() and (row[1 + j] != figure[1 + j]).any()


def test_blend_moves_the_band_from_the_row_seed_to_the_column_seeds_copy(run, tmp_path):
    workdir, G, variables = run
    assert sample("blend", "--workdir", workdir, "--outdir", tmp_path, "--row_seeds", 11, "--col_seeds", 21,
                  "--styles", "0-2", "--degrees", "0,0.5,1", "--upscale", 2, "--batch", 2) == 0
    big = read(tmp_path / "blend.png")
    assert big.shape == (2 * RES, 3 * 2 * RES, 3)
    figure = big[::2, ::2]
    np.testing.assert_array_equal(big, figure.repeat(2, 0).repeat(2, 1))  # nearest: 2x2 blocks
    row, col = np.asarray(styles(G, variables, 11)), np.asarray(styles(G, variables, 21))
    half = row.copy()
    half[:, :3] = (row[:, :3] + col[:, :3]) / 2  # by hand: the band's midpoint, the rest the row's
    first, middle, last = cells(figure, 3)
    np.testing.assert_array_equal(first, expected(G, variables, seed=11))
    np.testing.assert_array_equal(middle, expected(G, variables, ws=half, noise_seed=11))
    np.testing.assert_array_equal(last, expected(G, variables, ws=mix_styles(col, row, 3), noise_seed=11))
    assert sample("mixing", "--workdir", workdir, "--outdir", tmp_path, "--row_seeds", 11, "--col_seeds", 21,
                  "--styles", "0-2", "--degree", 0.5) == 0
    np.testing.assert_array_equal(cells(read(tmp_path / "stylemix.png"), 2)[3], middle)


def test_blend_styles_ends_are_exact_and_its_weights_are_per_layer():
    rng = np.random.default_rng(0)
    row, col = rng.normal(size=(2, 3, 6, 4)).astype(np.float32)
    np.testing.assert_array_equal(blend_styles(row, col, np.zeros(6)), row)
    np.testing.assert_array_equal(blend_styles(row, col, np.ones(6)), col)
    weights = np.array([[0, 0.25, 0.5, 1, 0, 0]] * 2 + [[1, 1, 1, 0, 0, 0.5]], np.float32)  # per image
    hand = row + weights[..., None] * (col - row)
    np.testing.assert_allclose(blend_styles(row, col, weights), hand, rtol=0, atol=1e-6)


def test_new_psi_and_blend_weights_reuse_the_compiled_renderer(run, caplog):
    _, G, variables = run
    renderer = Renderer(G, variables)
    image, ws = renderer.seeds_blended(1, 2, np.zeros(G.num_ws))  # compiles
    np.testing.assert_array_equal(image, expected(G, variables, seed=1))
    with jax.log_compiles(True), caplog.at_level("WARNING"):
        caplog.clear()
        for psi, degree in [(0.7, 0.5), (0.3, 1.0)]:
            image, ws = renderer.seeds_blended(1, 2, np.full(G.num_ws, degree), psi)
        renderer.seeds_blended(2, 1, np.ones(G.num_ws))
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()], caplog.text
    column = styles(G, variables, 2, 0.3)  # degree 1: the column's truncated styles
    np.testing.assert_allclose(ws, column[0], rtol=0, atol=1e-6)  # jit and eager round apart
    np.testing.assert_array_equal(image, renderer.images(ws[None], [1])[0])


def test_truncation_sweep_runs_from_the_seed_to_the_average(run, tmp_path):
    workdir, G, variables = run
    assert sample("truncation", "--workdir", workdir, "--outdir", tmp_path, "--seeds", "5,6",
                  "--psis", "1,0.5,0") == 0
    sweep = cells(read(tmp_path / "truncation.png"), 3)
    w_avg = jnp.broadcast_to(variables["stats"]["mapping"]["w_avg"], (1, G.num_ws, G.w_dim))
    for i, seed in enumerate([5, 6]):
        np.testing.assert_array_equal(sweep[3 * i], expected(G, variables, seed=seed))
        half = styles(G, variables, seed, 0.5)
        np.testing.assert_array_equal(sweep[3 * i + 1], expected(G, variables, ws=half, noise_seed=seed))
        np.testing.assert_array_equal(sweep[3 * i + 2], expected(G, variables, ws=w_avg))  # psi 0: w_avg


def test_interpolation_is_a_looping_gif_through_the_seeds(run, tmp_path):
    workdir, G, variables = run
    assert sample("interpolate", "--workdir", workdir, "--outdir", tmp_path, "--seeds", "3,5",
                  "--frames", 4, "--fps", 10) == 0
    gif = Image.open(tmp_path / "interpolation.gif")
    assert (gif.n_frames, gif.size, gif.info["loop"], gif.info["duration"]) == (8, (RES, RES), 0, 100)
    # the frames are a walk through W (tests/test_video.py); the palette is close to their colours
    for frame, seed in [(0, 3), (4, 5)]:
        gif.seek(frame)
        assert np.abs(np.asarray(gif.convert("RGB"), float) - expected(G, variables, seed=seed)).mean() < 8


def test_noise_modes_and_truncation_options(run, tmp_path):
    workdir, G, variables = run
    outputs = {}
    for name, options in {"const": [], "random": ["--noise_mode", "random"],
                          "random_again": ["--noise_mode", "random"], "none": ["--noise_mode", "none"],
                          "truncated": ["--trunc", "0.5", "--trunc_cutoff", "2"]}.items():
        assert sample("seeds", "--workdir", workdir, "--outdir", tmp_path / name, "--seeds", 9, *options) == 0
        outputs[name] = read(tmp_path / name / "seed0009.png")
    np.testing.assert_array_equal(outputs["random"], outputs["random_again"])  # noise drawn from the seed
    np.testing.assert_array_equal(outputs["random"], expected(G, variables, seed=9, noise_mode="random",
                                                              noise_seed=9))
    np.testing.assert_array_equal(outputs["none"], expected(G, variables, seed=9, noise_mode="none"))
    assert (outputs["random"] != outputs["const"]).any() and (outputs["none"] != outputs["const"]).any()
    ws = G.apply(variables, jnp.asarray(z_from_seeds([9], G.z_dim)), truncation_psi=0.5, truncation_cutoff=2,
                 method=G.map_latents)
    np.testing.assert_array_equal(outputs["truncated"], expected(G, variables, ws=ws))


def test_class_label_of_a_conditional_generator(tmp_path, capsys):
    workdir = tmp_path / "run"
    G, variables = generator(workdir, c_dim=10)
    for label in (3, 4):
        assert sample("seeds", "--workdir", workdir, "--outdir", tmp_path / f"c{label}", "--seeds", 1,
                      "--class", label) == 0
        c = jax.nn.one_hot(jnp.asarray([label]), 10)
        np.testing.assert_array_equal(read(tmp_path / f"c{label}" / "seed0001.png"),
                                      expected(G, variables, seed=1, c=c))
    assert (read(tmp_path / "c3" / "seed0001.png") != read(tmp_path / "c4" / "seed0001.png")).any()
    capsys.readouterr()
    for extra, message in [([], "conditional on 10 classes: pick one with --class 0..9"),
                           (["--class", "10"], "--class 10 is out of range: use 0..9")]:
        assert sample("seeds", "--workdir", workdir, "--outdir", tmp_path / "x", "--seeds", 1, *extra) == 2
        assert message in capsys.readouterr().err


def broken_copy(run, tmp_path, how: str):
    """A copy of the run directory with one thing wrong."""
    workdir = tmp_path / "broken"
    shutil.copytree(run[0], workdir)
    if how == "corrupt":
        truncate_arrays(workdir / "checkpoints" / "10")
    elif how == "architecture":
        config = json.loads((workdir / "config.json").read_text())
        config["model"]["channel_max"] = 16
        (workdir / "config.json").write_text(json.dumps(config))
    elif how == "no checkpoints":
        shutil.rmtree(workdir / "checkpoints")
    return workdir


@pytest.mark.parametrize("args, damage, message", [
    (["seeds", "--seeds", "1-x"], None, "bad list '1-x': use non-negative integers"),
    (["seeds", "--seeds", "3-1"], None, "bad list '3-1'"),
    (["seeds", "--seeds", "4294967296"], None, "seed 4294967296 is too large"),
    (["seeds", "--seeds", "1", "--step", "99"], None, "no checkpoint of step 99 in"),
    (["seeds", "--seeds", "1"], "no checkpoints", "checkpoints does not exist; point --workdir at a"),
    (["seeds", "--seeds", "1"], "corrupt", "checkpoints/10 is truncated or corrupt and cannot be restored"),
    (["seeds", "--seeds", "1"], "architecture", "checkpoints/10 holds a different network than the config"),
    (["mixing", "--row_seeds", "1", "--col_seeds", "2", "--styles", "fine"], None,
     "--styles 'fine' names no ws of this 16x16 generator, whose ws are 0-5"),
    (["mixing", "--row_seeds", "1", "--col_seeds", "2", "--styles", "2-9"], None, "--styles '2-9' names no"),
    (["seeds", "--seeds", "1", "--class", "2"], None, "this generator is unconditional: drop --class"),
    (["seeds", "--seeds", "1", "--trunc_cutoff", "9"], None, "truncation cutoff 9 is out of range: use 1..6"),
    (["interpolate", "--seeds", "4"], None, "interpolate needs at least two --seeds"),
    (["truncation", "--seeds", "1", "--psis", "1,x"], None, "bad list '1,x'"),
    (["seeds", "--seeds", "1", "--noise_mode", "loud"], None, "value should be one of <random|const|none>"),
    (["warp", "--seeds", "1"], None,
     "give one MODE of seeds, grid, mixing, blend, truncation, interpolate, video"),
])
def test_bad_input_is_one_line_and_costs_nothing(run, tmp_path, capsys, args, damage, message):
    workdir = broken_copy(run, tmp_path, damage) if damage else run[0]
    before = snapshot(workdir)
    capsys.readouterr()
    assert sample(*args, "--workdir", workdir, "--outdir", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert snapshot(workdir) == before
    assert not (tmp_path / "out").exists()


def test_no_workdir_and_an_outdir_inside_the_checkpoints_are_refused(run, tmp_path, capsys):
    workdir = run[0]
    assert sample("seeds", "--seeds", 1, "--workdir", tmp_path / "nothing", "--outdir", tmp_path / "out") == 2
    assert "nothing/config.json not found: --workdir must be the directory a training run wrote" in \
        capsys.readouterr().err
    before = snapshot(workdir)
    inside = workdir / "checkpoints" / "png"
    assert sample("seeds", "--seeds", 1, "--workdir", workdir, "--outdir", inside) == 2
    assert "is inside the checkpoint directory" in capsys.readouterr().err
    assert snapshot(workdir) == before


def test_sampling_never_writes_into_the_checkpoint_directory(run, tmp_path):
    workdir = run[0]
    before = snapshot(workdir / "checkpoints")
    for args in (["seeds", "--seeds", "1"], ["grid", "--seeds", "0-3"],
                 ["mixing", "--row_seeds", "1", "--col_seeds", "2"], ["truncation", "--seeds", "1"],
                 ["interpolate", "--seeds", "1,2", "--frames", "2"]):
        assert sample(*args, "--workdir", workdir, "--outdir", tmp_path) == 0
    assert snapshot(workdir / "checkpoints") == before
    assert sorted(os.listdir(tmp_path)) == ["grid.png", "interpolation.gif", "seed0001.png", "stylemix.png",
                                            "truncation.png"]


def test_grid_gap_separates_cells_with_grey_lines():
    images = np.arange(1, 4, dtype=np.uint8)[:, None, None, None] * np.ones((3, 2, 3, 1), np.uint8)
    grid = make_grid(images, cols=2, gap=1)
    assert grid.shape == (2 * 2 + 1, 2 * 3 + 1, 1)
    expected = np.full((5, 7, 1), GAP_VALUE, np.uint8)  # built cell by cell
    for i, (row, col) in enumerate([(0, 0), (0, 1), (1, 0)]):
        expected[row * 3:row * 3 + 2, col * 4:col * 4 + 3] = i + 1
    expected[3:5, 4:7] = 0  # the unused cell is black
    np.testing.assert_array_equal(grid, expected)
    np.testing.assert_array_equal(make_grid(images, cols=2, gap=0)[:2, :3], images[0])
