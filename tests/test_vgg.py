"""The Flax VGG16 and LPIPS against slow numpy references, on random-weight files in the
torchvision / LPIPS layouts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylejax.metrics.errors import MetricsError
from stylejax.metrics.vgg import LPIPS, VGG16, imagenet_features
from stylejax.metrics.vgg_weights import load_lpips, load_vgg16
from tests import official_files as of
from tests import vgg_files as vf


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return vf.write_weights(tmp_path_factory.mktemp("vgg"))


def test_vgg16_blocks_and_fc2_match_numpy(weights):
    """96x96 leaves 3x3 after the last pool: the adaptive pool's overlapping 7x7 windows."""
    params, widths, fc_width, _ = load_vgg16(weights[0])
    assert widths == vf.WIDTHS and fc_width == vf.FC_WIDTH
    x = np.random.default_rng(2).normal(size=(2, 96, 96, 3)).astype(np.float32)
    blocks, fc2 = jax.jit(lambda p, x: VGG16(widths, fc_width).apply({"params": p}, x, fc=True))(
        params, x)
    want_blocks, want_fc2 = vf.numpy_vgg16(vf.vgg16_tensors(), x.transpose(0, 3, 1, 2))
    for got, want in zip(blocks, want_blocks, strict=True):
        np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fc2, want_fc2, rtol=1e-4, atol=1e-4)
    assert np.abs(want_fc2).max() > 0.1


def test_imagenet_features_normalise_grey_pixels_as_torchvision(weights):
    params, widths, fc_width, _ = load_vgg16(weights[0])
    pixels = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 1)).astype(np.float32)
    got = imagenet_features(VGG16(widths, fc_width), params, jnp.asarray(pixels), size=32)
    rgb = np.repeat(pixels, 3, axis=-1) / 255
    x = (rgb - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(got, vf.numpy_vgg16(vf.vgg16_tensors(), x.transpose(0, 3, 1, 2))[1],
                               rtol=1e-4, atol=1e-4)
    assert imagenet_features(VGG16(widths, fc_width), params, jnp.asarray(pixels), 48).shape == (
        2, vf.FC_WIDTH)


def test_lpips_matches_numpy_and_is_a_distance(weights):
    params, widths, _ = load_lpips(*weights)
    rng = np.random.default_rng(4)
    x0 = np.tanh(rng.normal(size=(3, 32, 32, 3))).astype(np.float32)
    x1 = np.clip(x0 + rng.normal(0, 0.3, x0.shape), -1, 1).astype(np.float32)
    lpips = jax.jit(lambda p, a, b: LPIPS(widths).apply({"params": p}, a, b))
    got = lpips(params, x0, x1)
    np.testing.assert_allclose(got, vf.numpy_lpips(vf.vgg16_tensors(), vf.lpips_tensors(), x0, x1),
                               rtol=1e-4)
    assert np.all(np.asarray(got) > 0)
    np.testing.assert_allclose(lpips(params, x0, x0), 0, atol=1e-6)
    np.testing.assert_allclose(lpips(params, x1, x0), got, rtol=1e-5)


def test_missing_files_say_where_to_get_them(tmp_path, weights):
    with pytest.raises(MetricsError, match="download.pytorch.org/models/vgg16-397923af.pth"):
        load_vgg16(None)
    with pytest.raises(MetricsError, match="does not exist.*vgg16-397923af"):
        load_vgg16(str(tmp_path / "nope.pth"))
    with pytest.raises(MetricsError, match="PerceptualSimilarity.*v0.1/vgg.pth.*--lpips"):
        load_lpips(weights[0], None)


def test_a_different_network_is_refused_with_the_tensor(tmp_path, weights):
    tensors = vf.vgg16_tensors()
    tensors["features.5.weight"] = tensors["features.5.weight"][:, :2]
    of.write_state_dict(tmp_path / "bad.pth", tensors)
    with pytest.raises(MetricsError, match=r"features.5.weight has shape \(6, 2, 3, 3\)"):
        load_vgg16(str(tmp_path / "bad.pth"))
    heads = vf.lpips_tensors()
    heads["lin2.model.1.weight"] = heads["lin2.model.1.weight"][:, :5]
    of.write_state_dict(tmp_path / "heads.pth", heads, zip_format=False)
    with pytest.raises(MetricsError, match=r"lin2.model.1.weight has shape \(1, 5, 1, 1\)"):
        load_lpips(weights[0], str(tmp_path / "heads.pth"))
    with pytest.raises(MetricsError, match="vgg16.pth has no tensor lin0.model.1.weight"):
        load_lpips(weights[0], weights[0])  # the files swapped
