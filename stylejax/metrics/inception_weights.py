"""Reading the FID Inception weights from the file users download, TF's frozen 2015 graph.

`inception-2015-12-05.tgz` holds `classify_image_graph_def.pb`, a GraphDef whose constants are
the weights. Each conv scope S of `inception.SPEC` has nodes S/conv2d_params (HWIO filter),
S/Conv2D, S/batchnorm/{beta, gamma, moving_mean, moving_variance} and S/batchnorm (a
BatchNormWithGlobalNormalization op); they are read by name, the batch norm folded into a kernel
and bias. Every op's strides, padding, pool type and shape is checked against the network that
runs, so a different graph is refused with the node that differs instead of giving wrong FIDs.
"""

import hashlib
import os
import tarfile
from typing import Any

import numpy as np

from stylejax.metrics import inception
from stylejax.metrics.errors import MetricsError

URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
GRAPH_FILE = "classify_image_graph_def.pb"
HOW_TO_GET = (f"download {URL} and give its path (or that of the {GRAPH_FILE} inside it) with "
              "--config.inception_path (training) or --inception (stylejax.evaluate)")


def read_graph_bytes(path: str | None) -> bytes:
    """The serialized GraphDef from the .tgz or the .pb itself."""
    if not path:
        raise MetricsError(f"the Inception metrics need the FID Inception weights: {HOW_TO_GET}")
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise MetricsError(f"Inception weights file {path} does not exist: {HOW_TO_GET}")
    if tarfile.is_tarfile(path):
        try:
            with tarfile.open(path) as archive:
                member = next((m for m in archive.getmembers()
                               if m.isfile() and os.path.basename(m.name) == GRAPH_FILE), None)
                if member is None:
                    raise MetricsError(f"{path} has no {GRAPH_FILE} inside: {HOW_TO_GET}")
                return archive.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise MetricsError(f"cannot read the archive {path} ({e}): {HOW_TO_GET}") from None
    with open(path, "rb") as f:
        return f.read()


def _parse(data: bytes, path: str) -> Any:
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import graph_pb2

    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):
        graph = None
    if graph is None or not graph.node:
        raise MetricsError(f"{path} is not a TensorFlow graph file (GraphDef): {HOW_TO_GET}")
    return graph


class _Graph:
    """Name -> node look-ups that say which node is wrong when the file is not the FID graph."""

    def __init__(self, graph_def: Any, path: str):
        self.nodes = {n.name: n for n in graph_def.node}
        self.path = path

    def wrong(self, what: str) -> MetricsError:
        return MetricsError(f"{self.path} is not the inception-2015-12-05 FID graph ({what}): "
                            f"{HOW_TO_GET}")

    def node(self, name: str, op: str) -> Any:
        node = self.nodes.get(name)
        if node is None:
            raise self.wrong(f"it has no node {name!r}")
        if node.op != op:
            raise self.wrong(f"node {name!r} is a {node.op}, expected {op}")
        return node

    def const(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        import tensorflow as tf

        value = tf.make_ndarray(self.node(name, "Const").attr["value"].tensor)
        if shape is not None and value.shape != tuple(shape):
            raise self.wrong(f"{name!r} has shape {value.shape}, expected {tuple(shape)}")
        return value

    def check_attr(self, node: Any, key: str, expected: Any) -> None:
        attr = node.attr[key]
        value = list(attr.list.i) if attr.HasField("list") else attr.s.decode()
        if value != expected:
            raise self.wrong(f"{node.name!r} has {key}={value}, expected {expected}")


def _check_input(graph: _Graph) -> None:
    """The pre-processing the network hard-codes: resize to 299, (x - 128) / 128."""
    graph.node("ResizeBilinear", "ResizeBilinear")
    size = graph.const("ResizeBilinear/size").tolist()
    mean, scale = float(graph.const("Sub/y")), float(graph.const("Mul/y"))
    expected = ([inception.INPUT_SIZE] * 2, inception.INPUT_MEAN, inception.INPUT_SCALE)
    if (size, mean, scale) != expected:
        raise graph.wrong(f"its input is resized to {size} and scaled as (x - {mean}) * {scale}, "
                          f"expected {expected[0]}, (x - {expected[1]}) * {expected[2]}")


def _conv_params(graph: _Graph, layer: inception.Conv, in_channels: int) -> dict[str, np.ndarray]:
    conv = graph.node(f"{layer.name}/Conv2D", "Conv2D")
    graph.check_attr(conv, "strides", [1, layer.stride, layer.stride, 1])
    graph.check_attr(conv, "padding", layer.padding)
    kernel = graph.const(f"{layer.name}/conv2d_params",
                         (*layer.kernel, in_channels, layer.features)).astype(np.float64)
    norm = graph.node(f"{layer.name}/batchnorm", "BatchNormWithGlobalNormalization")
    channel = (layer.features,)
    stats = {k: graph.const(f"{layer.name}/batchnorm/{k}", channel).astype(np.float64)
             for k in ("beta", "gamma", "moving_mean", "moving_variance")}
    scale = 1 / np.sqrt(stats["moving_variance"] + norm.attr["variance_epsilon"].f)
    if norm.attr["scale_after_normalization"].b:
        scale = scale * stats["gamma"]
    return {"kernel": (kernel * scale).astype(np.float32),
            "bias": (stats["beta"] - stats["moving_mean"] * scale).astype(np.float32)}


def _check_pool(graph: _Graph, layer: inception.Pool) -> None:
    node = graph.node(layer.name, layer.op)
    graph.check_attr(node, "ksize", [1, layer.window, layer.window, 1])
    graph.check_attr(node, "strides", [1, layer.stride, layer.stride, 1])
    graph.check_attr(node, "padding", layer.padding)


def load_inception(path: str | None) -> tuple[dict, str]:
    """(Flax params of `inception.InceptionV3`, sha256 of the graph) from the downloaded file.

    The hash names the weights in the dataset-statistics cache.
    """
    import jax
    import jax.numpy as jnp

    data = read_graph_bytes(path)
    graph = _Graph(_parse(data, path), path)
    _check_input(graph)
    shapes = jax.eval_shape(inception.InceptionV3().init, jax.random.key(0),
                            jnp.zeros((1, inception.INPUT_SIZE, inception.INPUT_SIZE, 3)))["params"]
    params = {}
    for layer in inception.layers():
        if isinstance(layer, inception.Conv):
            params[layer.name] = _conv_params(graph, layer, shapes[layer.name]["kernel"].shape[2])
        else:
            _check_pool(graph, layer)
    return params, hashlib.sha256(data).hexdigest()
