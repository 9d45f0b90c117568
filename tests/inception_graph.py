"""Writes a GraphDef laid out like TF's inception-2015-12-05 `classify_image_graph_def.pb`, with
random weights: the same node names, ops, attributes and wiring, node by node, as the graph FID
is defined with. Written here independently of `stylejax.metrics.inception.SPEC`, from the
published node listings of that graph, so that the loader and the Flax network are tested
against the file format rather than against themselves.

Every conv scope S is S/conv2d_params -> S/Conv2D -> S/batchnorm (BatchNormWithGlobalNormalization
on S/batchnorm/{moving_mean, moving_variance, beta, gamma}) -> S/CheckNumerics, S/control_dependency
-> S (Relu); pools are P/CheckNumerics, P/control_dependency -> P; blocks end in B/join (Concat
on B/join/concat_dim). The Inception-E blocks concatenate their six outputs in one join.
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, graph_pb2

FLOAT = tf.float32.as_datatype_enum
INT32 = tf.int32.as_datatype_enum


def _attr(value) -> attr_value_pb2.AttrValue:
    if isinstance(value, bool):
        return attr_value_pb2.AttrValue(b=value)
    if isinstance(value, int):
        return attr_value_pb2.AttrValue(i=value)
    if isinstance(value, float):
        return attr_value_pb2.AttrValue(f=value)
    if isinstance(value, str):
        return attr_value_pb2.AttrValue(s=value.encode())
    if isinstance(value, list):
        return attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(i=value))
    if isinstance(value, tf.DType):
        return attr_value_pb2.AttrValue(type=value.as_datatype_enum)
    return attr_value_pb2.AttrValue(tensor=value)


class InceptionGraphWriter:
    """Emits the nodes in the order the real graph lists them."""

    def __init__(self, seed: int = 0, scale_after_normalization: bool = False,
                 mixed_10_pool: str = "MaxPool"):
        self.graph = graph_pb2.GraphDef()
        # An old producer version, as the 2015 file has: BatchNormWithGlobalNormalization is
        # refused in GraphDefs from version 9 on.
        self.graph.versions.producer = 5
        self.rng = np.random.default_rng(seed)
        self.scale_after_normalization = scale_after_normalization
        self.mixed_10_pool = mixed_10_pool

    def node(self, name: str, op: str, inputs=(), **attrs) -> str:
        node = self.graph.node.add(name=name, op=op)
        node.input.extend(inputs)
        for key, value in attrs.items():
            node.attr[key].CopyFrom(_attr(value))
        return name

    def const(self, name: str, value: np.ndarray, dtype=tf.float32) -> str:
        return self.node(name, "Const", dtype=dtype,
                         value=tf.make_tensor_proto(np.asarray(value), dtype=dtype))

    def checked(self, name: str, x: str) -> str:
        """CheckNumerics on the input of node `name`, and an Identity that waits for it."""
        self.node(f"{name}/CheckNumerics", "CheckNumerics", [x], T=tf.float32,
                  message=f"{name}/CheckNumerics")
        return self.node(f"{name}/control_dependency", "Identity",
                         [x, f"^{name}/CheckNumerics"], T=tf.float32)

    def conv(self, scope: str, x: str, kh: int, kw: int, cin: int, cout: int, stride: int = 1,
             padding: str = "SAME") -> str:
        weights = self.rng.normal(0, 1 / np.sqrt(kh * kw * cin), (kh, kw, cin, cout))
        self.const(f"{scope}/conv2d_params", weights)
        self.node(f"{scope}/Conv2D", "Conv2D", [x, f"{scope}/conv2d_params"], T=tf.float32,
                  strides=[1, stride, stride, 1], padding=padding, use_cudnn_on_gpu=True)
        bn = f"{scope}/batchnorm"
        self.const(f"{bn}/beta", self.rng.normal(0, 0.2, cout))
        self.const(f"{bn}/gamma", self.rng.uniform(0.5, 1.5, cout))
        self.const(f"{bn}/moving_mean", self.rng.normal(0, 0.2, cout))
        self.const(f"{bn}/moving_variance", self.rng.uniform(0.4, 1.0, cout))
        self.node(bn, "BatchNormWithGlobalNormalization",
                  [f"{scope}/Conv2D", f"{bn}/moving_mean", f"{bn}/moving_variance",
                   f"{bn}/beta", f"{bn}/gamma"],
                  T=tf.float32, variance_epsilon=0.001,
                  scale_after_normalization=self.scale_after_normalization)
        return self.node(scope, "Relu", [self.checked(scope, bn)], T=tf.float32)

    def pool(self, name: str, x: str, op: str, size: int, stride: int, padding: str) -> str:
        return self.node(name, op, [self.checked(name, x)], T=tf.float32,
                         ksize=[1, size, size, 1], strides=[1, stride, stride, 1],
                         padding=padding)

    def join(self, scope: str, inputs: list[str]) -> str:
        self.const(f"{scope}/join/concat_dim", np.int32(3), tf.int32)
        return self.node(f"{scope}/join", "Concat", [f"{scope}/join/concat_dim", *inputs],
                         N=len(inputs), T=tf.float32)

    # --- the blocks ----------------------------------------------------------------------------

    def mixed_a(self, s: str, x: str, cin: int, pool_channels: int) -> tuple[str, int]:
        b0 = self.conv(f"{s}/conv", x, 1, 1, cin, 64)
        b1 = self.conv(f"{s}/tower/conv", x, 1, 1, cin, 48)
        b1 = self.conv(f"{s}/tower/conv_1", b1, 5, 5, 48, 64)
        b2 = self.conv(f"{s}/tower_1/conv", x, 1, 1, cin, 64)
        b2 = self.conv(f"{s}/tower_1/conv_1", b2, 3, 3, 64, 96)
        b2 = self.conv(f"{s}/tower_1/conv_2", b2, 3, 3, 96, 96)
        b3 = self.pool(f"{s}/tower_2/pool", x, "AvgPool", 3, 1, "SAME")
        b3 = self.conv(f"{s}/tower_2/conv", b3, 1, 1, cin, pool_channels)
        return self.join(s, [b0, b1, b2, b3]), 64 + 64 + 96 + pool_channels

    def mixed_b(self, s: str, x: str, cin: int) -> tuple[str, int]:
        b0 = self.conv(f"{s}/conv", x, 3, 3, cin, 384, 2, "VALID")
        b1 = self.conv(f"{s}/tower/conv", x, 1, 1, cin, 64)
        b1 = self.conv(f"{s}/tower/conv_1", b1, 3, 3, 64, 96)
        b1 = self.conv(f"{s}/tower/conv_2", b1, 3, 3, 96, 96, 2, "VALID")
        b2 = self.pool(f"{s}/pool", x, "MaxPool", 3, 2, "VALID")
        return self.join(s, [b0, b1, b2]), 384 + 96 + cin

    def mixed_c(self, s: str, x: str, cin: int, c7: int) -> tuple[str, int]:
        b0 = self.conv(f"{s}/conv", x, 1, 1, cin, 192)
        b1 = self.conv(f"{s}/tower/conv", x, 1, 1, cin, c7)
        b1 = self.conv(f"{s}/tower/conv_1", b1, 1, 7, c7, c7)
        b1 = self.conv(f"{s}/tower/conv_2", b1, 7, 1, c7, 192)
        b2 = self.conv(f"{s}/tower_1/conv", x, 1, 1, cin, c7)
        b2 = self.conv(f"{s}/tower_1/conv_1", b2, 7, 1, c7, c7)
        b2 = self.conv(f"{s}/tower_1/conv_2", b2, 1, 7, c7, c7)
        b2 = self.conv(f"{s}/tower_1/conv_3", b2, 7, 1, c7, c7)
        b2 = self.conv(f"{s}/tower_1/conv_4", b2, 1, 7, c7, 192)
        b3 = self.pool(f"{s}/tower_2/pool", x, "AvgPool", 3, 1, "SAME")
        b3 = self.conv(f"{s}/tower_2/conv", b3, 1, 1, cin, 192)
        return self.join(s, [b0, b1, b2, b3]), 768

    def mixed_d(self, s: str, x: str, cin: int) -> tuple[str, int]:
        b0 = self.conv(f"{s}/tower/conv", x, 1, 1, cin, 192)
        b0 = self.conv(f"{s}/tower/conv_1", b0, 3, 3, 192, 320, 2, "VALID")
        b1 = self.conv(f"{s}/tower_1/conv", x, 1, 1, cin, 192)
        b1 = self.conv(f"{s}/tower_1/conv_1", b1, 1, 7, 192, 192)
        b1 = self.conv(f"{s}/tower_1/conv_2", b1, 7, 1, 192, 192)
        b1 = self.conv(f"{s}/tower_1/conv_3", b1, 3, 3, 192, 192, 2, "VALID")
        b2 = self.pool(f"{s}/pool", x, "MaxPool", 3, 2, "VALID")
        return self.join(s, [b0, b1, b2]), 320 + 192 + cin

    def mixed_e(self, s: str, x: str, cin: int, pool_op: str) -> tuple[str, int]:
        b0 = self.conv(f"{s}/conv", x, 1, 1, cin, 320)
        t = self.conv(f"{s}/tower/conv", x, 1, 1, cin, 384)
        t_a = self.conv(f"{s}/tower/mixed/conv", t, 1, 3, 384, 384)
        t_b = self.conv(f"{s}/tower/mixed/conv_1", t, 3, 1, 384, 384)
        u = self.conv(f"{s}/tower_1/conv", x, 1, 1, cin, 448)
        u = self.conv(f"{s}/tower_1/conv_1", u, 3, 3, 448, 384)
        u_a = self.conv(f"{s}/tower_1/mixed/conv", u, 1, 3, 384, 384)
        u_b = self.conv(f"{s}/tower_1/mixed/conv_1", u, 3, 1, 384, 384)
        p = self.pool(f"{s}/tower_2/pool", x, pool_op, 3, 1, "SAME")
        p = self.conv(f"{s}/tower_2/conv", p, 1, 1, cin, 192)
        return self.join(s, [b0, t_a, t_b, u_a, u_b, p]), 2048

    def build(self) -> graph_pb2.GraphDef:
        self.const("DecodeJpeg/contents", np.array(b""), tf.string)
        self.node("DecodeJpeg", "DecodeJpeg", ["DecodeJpeg/contents"], channels=3, ratio=1,
                  fancy_upscaling=True, try_recover_truncated=False, acceptable_fraction=1.0)
        self.node("Cast", "Cast", ["DecodeJpeg"], SrcT=tf.uint8, DstT=tf.float32)
        self.const("ExpandDims/dim", np.int32(0), tf.int32)
        self.node("ExpandDims", "ExpandDims", ["Cast", "ExpandDims/dim"], T=tf.float32,
                  Tdim=tf.int32)
        self.const("ResizeBilinear/size", np.array([299, 299], np.int32), tf.int32)
        self.node("ResizeBilinear", "ResizeBilinear", ["ExpandDims", "ResizeBilinear/size"],
                  T=tf.float32, align_corners=False)
        self.const("Sub/y", np.float32(128))
        self.node("Sub", "Sub", ["ResizeBilinear", "Sub/y"], T=tf.float32)
        self.const("Mul/y", np.float32(1 / 128))
        x = self.node("Mul", "Mul", ["Sub", "Mul/y"], T=tf.float32)

        x = self.conv("conv", x, 3, 3, 3, 32, 2, "VALID")
        x = self.conv("conv_1", x, 3, 3, 32, 32, 1, "VALID")
        x = self.conv("conv_2", x, 3, 3, 32, 64)
        x = self.pool("pool", x, "MaxPool", 3, 2, "VALID")
        x = self.conv("conv_3", x, 1, 1, 64, 80, 1, "VALID")
        x = self.conv("conv_4", x, 3, 3, 80, 192, 1, "VALID")
        x = self.pool("pool_1", x, "MaxPool", 3, 2, "VALID")
        x, c = self.mixed_a("mixed", x, 192, 32)
        x, c = self.mixed_a("mixed_1", x, c, 64)
        x, c = self.mixed_a("mixed_2", x, c, 64)
        x, c = self.mixed_b("mixed_3", x, c)
        for name, c7 in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
            x, c = self.mixed_c(name, x, c, c7)
        x, c = self.mixed_d("mixed_8", x, c)
        x, c = self.mixed_e("mixed_9", x, c, "AvgPool")
        x, c = self.mixed_e("mixed_10", x, c, self.mixed_10_pool)
        x = self.pool("pool_3", x, "AvgPool", 8, 1, "VALID")

        self.const("pool_3/_reshape/shape", np.array([1, 2048], np.int32), tf.int32)
        x = self.node("pool_3/_reshape", "Reshape", [x, "pool_3/_reshape/shape"], T=tf.float32,
                      Tshape=tf.int32)
        self.const("softmax/weights", self.rng.normal(0, 0.02, (2048, 1008)))
        self.const("softmax/biases", np.zeros(1008))
        self.node("softmax/logits/MatMul", "MatMul", [x, "softmax/weights"], T=tf.float32,
                  transpose_a=False, transpose_b=False)
        self.node("softmax/logits", "BiasAdd", ["softmax/logits/MatMul", "softmax/biases"],
                  T=tf.float32)
        self.node("softmax", "Softmax", ["softmax/logits"], T=tf.float32)
        return self.graph


def run_graph(graph_def: graph_pb2.GraphDef, images: np.ndarray) -> np.ndarray:
    """pool_3 features of float images [N, H, W, 3] in [0, 255], fed where the reference FID
    code feeds them: the output of ExpandDims, i.e. the input of the resize."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        (pool_3,) = tf.graph_util.import_graph_def(
            graph_def, input_map={"ExpandDims:0": x}, return_elements=["pool_3:0"], name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(pool_3, {x: images}).reshape(len(images), -1)
