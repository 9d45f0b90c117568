"""The FID Inception-v3: shapes, the weight loader on a GraphDef in the real file format (random
weights), and equality with that graph executed by TensorFlow; bad weight files."""

import io
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from stylejax.metrics import extractors, inception, inception_weights
from stylejax.metrics.errors import MetricsError
from tests.inception_graph import InceptionGraphWriter, run_graph


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    """(path of a random-weight classify_image_graph_def.pb, its GraphDef)."""
    graph = InceptionGraphWriter(seed=0).build()
    path = tmp_path_factory.mktemp("inception") / inception_weights.GRAPH_FILE
    path.write_bytes(graph.SerializeToString())
    return str(path), graph


@pytest.fixture(scope="module")
def network():
    return jax.jit(inception.InceptionV3().apply)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_shapes_and_size():
    shapes = jax.eval_shape(inception.InceptionV3().init, jax.random.key(0),
                            jnp.zeros((2, 32, 32, 3)))
    out = jax.eval_shape(inception.InceptionV3().apply, shapes, jnp.zeros((2, 32, 32, 3)))
    assert out.shape == (2, inception.FEATURE_DIM)
    params = shapes["params"]
    assert len(params) == sum(isinstance(x, inception.Conv) for x in inception.layers()) == 94
    assert params["mixed_10/tower_1/mixed/conv_1"]["kernel"].shape == (3, 1, 384, 384)
    kernels = sum(p["kernel"].size for p in params.values())
    biases = sum(p["bias"].size for p in params.values())
    assert (kernels, biases) == (21_751_136, 17_216)  # batch norms folded into the biases


@pytest.mark.parametrize("shape", [(32, 32), (8, 8), (299, 299), (300, 180)])
def test_resize_is_tf1_legacy_bilinear(shape):
    images = np.random.default_rng(0).uniform(0, 255, (2, *shape, 3)).astype(np.float32)
    expected = tf.compat.v1.image.resize_bilinear(images, [299, 299], align_corners=False,
                                                  half_pixel_centers=False).numpy()
    ours = np.asarray(inception.resize_bilinear_tf1(jnp.asarray(images), 299))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-4)


@pytest.mark.parametrize("scale_after_normalization", [False, True])
def test_network_equals_the_graph_run_by_tensorflow(tmp_path, network, scale_after_normalization):
    graph = InceptionGraphWriter(seed=1, scale_after_normalization=scale_after_normalization)
    graph = graph.build()
    path = tmp_path / "graph.pb"
    path.write_bytes(graph.SerializeToString())
    params, _ = inception_weights.load_inception(str(path))
    rng = np.random.default_rng(2)
    for size in (32, 299):
        images = rng.integers(0, 256, (2, size, size, 3)).astype(np.float32)
        expected = run_graph(graph, images)
        assert np.std(expected) > 0.05  # activations neither vanished nor saturated
        ours = np.asarray(network({"params": params}, images))
        assert relative_error(ours, expected) < 1e-4


def test_the_downloaded_archive_loads_like_the_graph(tmp_path, graph_file):
    path, _ = graph_file
    archive = tmp_path / "inception-2015-12-05.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(path, arcname=f"./{inception_weights.GRAPH_FILE}")
        data = b"labels"
        info = tarfile.TarInfo("./imagenet_synset_to_human_label_map.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    from_pb, hash_pb = inception_weights.load_inception(path)
    from_tgz, hash_tgz = inception_weights.load_inception(str(archive))
    assert hash_pb == hash_tgz
    for name in from_pb:
        np.testing.assert_array_equal(from_pb[name]["kernel"], from_tgz[name]["kernel"])


def test_pixels_of_real_images_come_back_exactly():
    u = np.arange(256, dtype=np.float32)
    as_read = u / np.float32(127.5) - 1  # what the input pipeline gives
    np.testing.assert_array_equal(np.asarray(extractors.to_pixels(jnp.asarray(as_read))), u)


def test_the_extractor_feeds_8_bit_pixels_like_the_reference(graph_file):
    path, graph = graph_file
    extractor = extractors.inception_extractor(path)
    images = np.random.default_rng(3).uniform(-1.2, 1.2, (2, 16, 16, 1)).astype(np.float32)
    pixels = np.clip(np.floor(images * 127.5 + 128), 0, 255)  # as saved 8-bit images hold them
    expected = run_graph(graph, np.repeat(pixels, 3, axis=-1))  # grey goes in as RGB
    ours = jax.jit(extractor.apply)(extractor.params, extractors.to_pixels(images))
    assert relative_error(np.asarray(ours), expected) < 1e-4


# --- bad weight files ----------------------------------------------------------------------------


def test_no_weights_file_says_where_to_get_it():
    with pytest.raises(MetricsError, match="need the FID Inception weights: download "
                                           + inception_weights.URL.replace(".", r"\.")):
        inception_weights.load_inception(None)


def test_missing_file(tmp_path):
    with pytest.raises(MetricsError, match="does not exist: download http"):
        inception_weights.load_inception(str(tmp_path / "inception-2015-12-05.tgz"))


@pytest.mark.parametrize("case", ["garbage", "other_graph", "archive_without_graph", "empty"])
def test_wrong_files_are_refused(tmp_path, case):
    path = tmp_path / "weights"
    if case == "garbage":
        path.write_bytes(b"\x00\xffnot a protobuf at all" * 10)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "other_graph":
        path.write_bytes(tf.function(lambda x: x * 2).get_concrete_function(
            tf.TensorSpec([None], tf.float32)).graph.as_graph_def().SerializeToString())
    else:
        path = tmp_path / "weights.tgz"
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo("readme.txt")
            tar.addfile(info, io.BytesIO(b""))
    message = {"garbage": "is not a TensorFlow graph file", "empty": "not a TensorFlow graph",
               "other_graph": "is not the inception-2015-12-05 FID graph",
               "archive_without_graph": "has no classify_image_graph_def.pb inside"}[case]
    with pytest.raises(MetricsError, match=message) as error:
        inception_weights.load_inception(str(path))
    assert "\n" not in str(error.value) and inception_weights.URL in str(error.value)


def test_a_graph_that_differs_names_the_node(tmp_path):
    # The ordinary Inception-v3's last block average-pools; the FID graph max-pools.
    graph = InceptionGraphWriter(seed=0, mixed_10_pool="AvgPool").build()
    path = tmp_path / "graph.pb"
    path.write_bytes(graph.SerializeToString())
    with pytest.raises(MetricsError, match="node 'mixed_10/tower_2/pool' is a AvgPool, "
                                           "expected MaxPool"):
        inception_weights.load_inception(str(path))
