"""Precision / recall against a brute-force reference and closed forms; perceptual path length
on toy generators whose path lengths have closed forms; both through the Evaluator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax.checkpoints import chosen_metric
from stylejax.metrics.distances import precision_recall
from stylejax.metrics.errors import MetricsError
from stylejax.metrics.evaluator import Evaluator
from stylejax.metrics.path_length import PathLength, filtered_mean, prepare_images
from stylejax.train.programs import make_mesh
from tests import vgg_files
from tests.metrics_helpers import metrics_config, tiny_generator


def brute_force_precision_recall(real, gen, k=3):
    def covered(manifold, probes):
        within = np.linalg.norm(manifold[:, None] - manifold[None], axis=-1)
        radius = np.sort(within, axis=1)[:, k]  # k-th neighbour; column 0 is the point itself
        to_probe = np.linalg.norm(probes[:, None] - manifold[None], axis=-1)
        return np.mean(np.any(to_probe <= radius[None], axis=1))

    return covered(real, gen), covered(gen, real)


@pytest.mark.parametrize("blocks", [(1024, 8192), (7, 5)], ids=["one-block", "small-blocks"])
def test_precision_recall_equal_the_brute_force_estimate(blocks):
    rng = np.random.default_rng(0)
    real = rng.normal(size=(37, 5))
    gen = rng.normal(0.5, 1.3, size=(29, 5))
    got = precision_recall(real, gen, 3, *blocks)
    want = brute_force_precision_recall(real, gen)
    np.testing.assert_allclose(got, want)
    assert 0 < want[0] < 1 and 0 < want[1] < 1 and want[0] != want[1]


def test_identical_sets_give_one_and_far_apart_sets_zero():
    x = np.random.default_rng(1).normal(size=(20, 4))
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(x, x + 100) == (0.0, 0.0)
    # generated = a tight cluster inside the real cloud: all precise, recalls only that corner
    precision, recall = precision_recall(x, x[:1] + 1e-3 * x[1:11])
    assert precision == 1.0 and recall < 0.5


def test_the_filtered_mean_drops_the_outer_percentiles():
    samples = np.random.default_rng(2).permutation(np.arange(1000.0))
    # 1st percentile rounded down: 9; 99th rounded up: 990 (np.percentile 'lower' / 'higher')
    assert filtered_mean(samples) == pytest.approx(np.arange(9, 991).mean())
    samples[:5] = 1e9  # outliers replace five values; they and the top values go
    kept = np.sort(samples)[np.sort(samples) <= np.sort(samples)[990]]
    assert filtered_mean(samples) == pytest.approx(kept[kept >= np.sort(samples)[9]].mean())


def _squared_l2(x0, x1):
    return jnp.sum(jnp.square(x0 - x1), axis=(1, 2, 3))


@pytest.mark.parametrize("epsilon, rtol", [(1e-2, 1e-5), (1e-4, 2e-2)])
def test_w_end_path_length_of_a_linear_generator(epsilon, rtol):
    """G(w) = A w with a linear mapping: every sample is |A M (z1 - z0)|^2, at any epsilon."""
    rng = np.random.default_rng(3)
    M = rng.normal(size=(3, 4)).astype(np.float32)  # z [4] -> w [3], broadcast to 2 ws
    A = rng.normal(size=(2 * 3, 8 * 8)).astype(np.float32)
    mapping = lambda z: jnp.broadcast_to((z @ M.T)[:, None], (len(z), 2, 3))  # noqa: E731
    synthesis = lambda ws: (ws.reshape(len(ws), -1) @ A).reshape(-1, 8, 8, 1)  # noqa: E731
    path = PathLength("w", "end", epsilon)
    t, z0, z1 = path.endpoints(jax.random.key(0), 16, 4)
    assert np.all(np.asarray(t) == 0)
    got = path.distances(t, z0, z1, mapping, synthesis, lambda a, b: _squared_l2(a, b) / 3, False)
    dw = np.repeat(((np.asarray(z1) - np.asarray(z0)) @ M.T)[:, None], 2, 1).reshape(16, -1)
    np.testing.assert_allclose(got, np.sum(np.square(dw @ A), axis=1), rtol=rtol)


def test_z_full_path_length_on_the_sphere_is_the_squared_angle():
    """With identity mapping and synthesis, slerp moves at speed angle(z0, z1) along the great
    circle, so each sample is that angle squared, whatever t."""
    path = PathLength("z", "full", 1e-3)
    t, z0, z1 = path.endpoints(jax.random.key(1), 32, 6)
    assert 0 < float(t.min()) < float(t.max()) < 1
    got = path.distances(t, z0, z1, lambda z: z, lambda w: w.reshape(-1, 1, 1, 6),
                         _squared_l2, False)
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    angle = np.arccos(np.sum(unit(np.asarray(z0, np.float64)) * unit(np.asarray(z1)), axis=1))
    np.testing.assert_allclose(got, angle ** 2, rtol=2e-3)


def test_images_are_cropped_to_the_face_and_box_downsampled():
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 16, 16, 1)), jnp.float32)
    np.testing.assert_array_equal(prepare_images(x, crop=True),
                                  np.repeat(np.asarray(x)[:, 6:14, 4:12], 3, axis=-1))
    big = np.random.default_rng(5).normal(size=(1, 512, 512, 3)).astype(np.float32)
    want = big.reshape(1, 256, 2, 256, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(prepare_images(jnp.asarray(big), crop=False), want, rtol=1e-5,
                               atol=1e-6)
    cropped = big[:, 192:448, 128:384].reshape(1, 128, 2, 128, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(prepare_images(jnp.asarray(big), crop=True), cropped, rtol=1e-5,
                               atol=1e-6)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from stylejax.data.pipeline import InputPipeline

    data_dir = str(tmp_path_factory.mktemp("data"))
    InputPipeline("digits", global_batch_size=8, seed=0, data_dir=data_dir)  # builds digits32
    config = metrics_config(data_dir, str(tmp_path_factory.mktemp("cache")), num_samples=48,
                            batch_size=16)
    config.metrics_split = "test"  # the smaller split: VGG16 runs on 224x224 images
    config.vgg16_path, config.lpips_path = vgg_files.write_weights(tmp_path_factory.mktemp("vgg"))
    return config


def test_the_evaluator_scores_path_lengths_precision_and_recall(config):
    config.metrics = ("ppl_wend", "precision", "recall")  # ppl_zfull: one more compile of G
    G, variables = tiny_generator()
    ev = Evaluator(config, G, make_mesh())
    results = ev(variables)
    assert list(results) == ["ppl_wend", "precision", "recall"]
    assert results["ppl_wend"] > 0
    assert 0 <= results["precision"] <= 1 and 0 <= results["recall"] <= 1
    samples = ev.path_samples(variables, "ppl_wend")
    assert samples.shape == (48,) and np.all(np.isfinite(samples)) and np.all(samples >= 0)
    assert filtered_mean(samples) == results["ppl_wend"]  # the same draws every time
    with pytest.raises(MetricsError, match="latent paths, not a set of images"):
        ev.score_images([np.zeros((4, 32, 32, 1), np.float32)])


def test_missing_weights_and_a_higher_is_better_first_metric_are_refused(config):
    config.metrics = ("ppl_wend",)
    lpips = config.lpips_path
    config.lpips_path = None
    with pytest.raises(MetricsError, match="LPIPS needs its weights file: download"):
        Evaluator(config, None, make_mesh())
    config.lpips_path = lpips
    config.metrics = ("recall", "ppl_wend")
    with pytest.raises(MetricsError, match="starts with recall.*--config.metrics=fid,recall"):
        chosen_metric(config)
