"""The Inception-v3 network FID is defined with, in Flax: TF's inception-2015-12-05 graph.

FID numbers are only comparable when they come from the same network: the frozen TensorFlow
graph `classify_image_graph_def.pb` of 2015, which the reference FID code (TTUR) and the official
StyleGAN code use (the PyTorch StyleGAN2-ADA through a port of it). It differs from later
Inception-v3 implementations (torchvision, Keras, TF-slim) in ways that change FID:
- its input node resizes with TF1's legacy bilinear kernel (no half-pixel centres: output pixel
  i samples input position i * in / out), then maps [0, 255] to [-1, 1] as (x - 128) / 128;
- average pools use SAME padding and divide by the number of real (unpadded) inputs;
- the last block, mixed_10, pools its fourth tower with a max pool, not an average pool.

`SPEC` is the graph's layer list (scopes, kernels, strides, paddings, pool types) and the network
below is run from it, so the weight loader (`inception_weights`) can check a graph file against
exactly what runs here. Parameters are one {'kernel', 'bias'} per conv scope, the graph's batch
normalisation folded in, under the graph's scope name ('mixed_9/tower/mixed/conv_1').
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

INPUT_SIZE = 299
INPUT_MEAN = 128.0  # the graph's Sub/y
INPUT_SCALE = 1 / 128  # the graph's Mul/y
FEATURE_DIM = 2048


@dataclasses.dataclass(frozen=True)
class Conv:
    """Conv2D + batch norm + ReLU, the graph's scope `name`."""

    name: str
    kernel: tuple[int, int]
    features: int
    stride: int = 1
    padding: str = "SAME"


@dataclasses.dataclass(frozen=True)
class Pool:
    """A MaxPool or AvgPool node (AvgPool with SAME padding averages real inputs only)."""

    name: str
    op: str  # "MaxPool" or "AvgPool"
    window: int
    stride: int
    padding: str


@dataclasses.dataclass(frozen=True)
class Fork:
    """Branches applied to the same input, concatenated on channels in order (a graph 'join')."""

    branches: tuple[tuple, ...]


def _conv(name: str, kernel: int | tuple[int, int], features: int, stride: int = 1,
          padding: str = "SAME") -> Conv:
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    return Conv(name, kernel, features, stride, padding)


def _mixed_a(name: str, pool_features: int) -> Fork:
    return Fork((
        (_conv(f"{name}/conv", 1, 64),),
        (_conv(f"{name}/tower/conv", 1, 48), _conv(f"{name}/tower/conv_1", 5, 64)),
        (_conv(f"{name}/tower_1/conv", 1, 64), _conv(f"{name}/tower_1/conv_1", 3, 96),
         _conv(f"{name}/tower_1/conv_2", 3, 96)),
        (Pool(f"{name}/tower_2/pool", "AvgPool", 3, 1, "SAME"),
         _conv(f"{name}/tower_2/conv", 1, pool_features)),
    ))


def _mixed_b(name: str) -> Fork:
    return Fork((
        (_conv(f"{name}/conv", 3, 384, 2, "VALID"),),
        (_conv(f"{name}/tower/conv", 1, 64), _conv(f"{name}/tower/conv_1", 3, 96),
         _conv(f"{name}/tower/conv_2", 3, 96, 2, "VALID")),
        (Pool(f"{name}/pool", "MaxPool", 3, 2, "VALID"),),
    ))


def _mixed_c(name: str, width: int) -> Fork:
    t, t1 = f"{name}/tower", f"{name}/tower_1"
    return Fork((
        (_conv(f"{name}/conv", 1, 192),),
        (_conv(f"{t}/conv", 1, width), _conv(f"{t}/conv_1", (1, 7), width),
         _conv(f"{t}/conv_2", (7, 1), 192)),
        (_conv(f"{t1}/conv", 1, width), _conv(f"{t1}/conv_1", (7, 1), width),
         _conv(f"{t1}/conv_2", (1, 7), width), _conv(f"{t1}/conv_3", (7, 1), width),
         _conv(f"{t1}/conv_4", (1, 7), 192)),
        (Pool(f"{name}/tower_2/pool", "AvgPool", 3, 1, "SAME"),
         _conv(f"{name}/tower_2/conv", 1, 192)),
    ))


def _mixed_d(name: str) -> Fork:
    t, t1 = f"{name}/tower", f"{name}/tower_1"
    return Fork((
        (_conv(f"{t}/conv", 1, 192), _conv(f"{t}/conv_1", 3, 320, 2, "VALID")),
        (_conv(f"{t1}/conv", 1, 192), _conv(f"{t1}/conv_1", (1, 7), 192),
         _conv(f"{t1}/conv_2", (7, 1), 192), _conv(f"{t1}/conv_3", 3, 192, 2, "VALID")),
        (Pool(f"{name}/pool", "MaxPool", 3, 2, "VALID"),),
    ))


def _mixed_e(name: str, pool_op: str) -> Fork:
    t, t1 = f"{name}/tower", f"{name}/tower_1"

    def split(scope: str) -> Fork:
        return Fork(((_conv(f"{scope}/mixed/conv", (1, 3), 384),),
                     (_conv(f"{scope}/mixed/conv_1", (3, 1), 384),)))

    return Fork((
        (_conv(f"{name}/conv", 1, 320),),
        (_conv(f"{t}/conv", 1, 384), split(t)),
        (_conv(f"{t1}/conv", 1, 448), _conv(f"{t1}/conv_1", 3, 384), split(t1)),
        (Pool(f"{name}/tower_2/pool", pool_op, 3, 1, "SAME"),
         _conv(f"{name}/tower_2/conv", 1, 192)),
    ))


# The graph from its input scaling ('Mul') to 'pool_3' (the 2048-d FID features).
SPEC: tuple = (
    _conv("conv", 3, 32, 2, "VALID"),
    _conv("conv_1", 3, 32, 1, "VALID"),
    _conv("conv_2", 3, 64),
    Pool("pool", "MaxPool", 3, 2, "VALID"),
    _conv("conv_3", 1, 80, 1, "VALID"),
    _conv("conv_4", 3, 192, 1, "VALID"),
    Pool("pool_1", "MaxPool", 3, 2, "VALID"),
    _mixed_a("mixed", 32), _mixed_a("mixed_1", 64), _mixed_a("mixed_2", 64),
    _mixed_b("mixed_3"),
    _mixed_c("mixed_4", 128), _mixed_c("mixed_5", 160), _mixed_c("mixed_6", 160),
    _mixed_c("mixed_7", 192),
    _mixed_d("mixed_8"),
    _mixed_e("mixed_9", "AvgPool"), _mixed_e("mixed_10", "MaxPool"),
    Pool("pool_3", "AvgPool", 8, 1, "VALID"),
)


def layers(spec: tuple = SPEC):
    """Every Conv and Pool of `spec`, in graph order."""
    for layer in spec:
        if isinstance(layer, Fork):
            for branch in layer.branches:
                yield from layers(branch)
        else:
            yield layer


@functools.lru_cache(maxsize=16)
def _resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] weights of TF1's legacy bilinear resize along one axis (float32, as TF).

    Output i reads input position p = i * (in / out), from pixels floor(p) and
    min(floor(p) + 1, in - 1) with weights 1 - frac(p) and frac(p).
    """
    scale = np.float32(in_size) / np.float32(out_size)
    position = np.arange(out_size, dtype=np.float32) * scale
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    frac = position - low.astype(np.float32)
    matrix = np.zeros((out_size, in_size), np.float32)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, low), 1 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


def resize_bilinear_tf1(images: jnp.ndarray, size: int) -> jnp.ndarray:
    """[N, H, W, C] -> [N, size, size, C] as the graph's ResizeBilinear node (align_corners and
    half_pixel_centers off), written as two matrix products so accelerators run it as matmuls."""
    rows = jnp.asarray(_resize_matrix(images.shape[1], size))
    cols = jnp.asarray(_resize_matrix(images.shape[2], size))
    hp = jax.lax.Precision.HIGHEST
    out = jnp.einsum("oh,nhwc->nowc", rows, images, precision=hp)
    return jnp.einsum("pw,nowc->nopc", cols, out, precision=hp)


class InceptionV3(nn.Module):
    """Images [N, H, W, 3] with values in [0, 255] (any size) -> pool_3 features [N, 2048].

    Float32 with the highest matmul / convolution precision, so that TPUs and GPUs do not round
    inputs to bfloat16 or TF32: the network must match the reference graph, not just be close.
    """

    @nn.compact
    def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
        x = resize_bilinear_tf1(images.astype(jnp.float32), INPUT_SIZE)
        x = (x - INPUT_MEAN) * INPUT_SCALE
        x = self._run(x, SPEC)
        return x.reshape(x.shape[0], FEATURE_DIM)

    def _run(self, x: jnp.ndarray, branch: tuple) -> jnp.ndarray:
        for layer in branch:
            if isinstance(layer, Fork):
                x = jnp.concatenate([self._run(x, b) for b in layer.branches], axis=-1)
            elif isinstance(layer, Conv):
                x = self._conv(x, layer)
            else:
                x = _pool(x, layer)
        return x

    def _conv(self, x: jnp.ndarray, layer: Conv) -> jnp.ndarray:
        conv = nn.Conv(layer.features, layer.kernel, strides=layer.stride, padding=layer.padding,
                       precision=jax.lax.Precision.HIGHEST, name=layer.name)
        return nn.relu(conv(x))


def _pool(x: jnp.ndarray, layer: Pool) -> jnp.ndarray:
    window, strides = (layer.window, layer.window), (layer.stride, layer.stride)
    if layer.op == "MaxPool":
        return nn.max_pool(x, window, strides, padding=layer.padding)
    return nn.avg_pool(x, window, strides, padding=layer.padding, count_include_pad=False)
