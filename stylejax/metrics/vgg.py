"""torchvision's VGG16 in Flax (NHWC), and LPIPS (Zhang et al. 2018) on its features.

VGG16 is 13 3x3 convolutions with ReLU in five blocks, each block ending in a 2x2 max pool,
then an adaptive average pool to 7x7 and the classifier's fc1 and fc2 (4096, ReLU). Layers are
named by their index in torchvision's `features` / `classifier` Sequentials, so weights map one
to one. Widths come from the weights: a smaller network of the same structure runs the same code.

LPIPS (v0.1, 'vgg'): images in [-1, 1] shifted and scaled per channel, the ReLU outputs ending
each block (relu1_2 ... relu5_3) unit-normalised over channels, squared differences weighted per
channel by the linear heads, averaged over space and summed over the five layers.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# torchvision `features` indices of the convolutions, per block
BLOCKS = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
CONV_INDICES = tuple(i for block in BLOCKS for i in block)
FC_INDICES = (0, 3)  # classifier: fc1, fc2 (each then ReLU; dropout is off at evaluation)
POOL_SIZE = 7
# torchvision's ImageNet input normalisation of [0, 1] pixels
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# the LPIPS project's ScalingLayer, on [-1, 1] pixels
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_EPS = 1e-10  # added to each feature vector's norm before dividing


def adaptive_average_pool(x: jnp.ndarray, size: int) -> jnp.ndarray:
    """torch's AdaptiveAvgPool2d: output cell i averages input rows floor(i H / size) to
    ceil((i + 1) H / size) (and likewise columns), as a matrix product per axis."""

    def weights(n: int) -> jnp.ndarray:
        starts = [i * n // size for i in range(size)]
        ends = [-(-(i + 1) * n // size) for i in range(size)]
        rows = [[1.0 / (e - s) if s <= j < e else 0.0 for j in range(n)]
                for s, e in zip(starts, ends, strict=True)]
        return jnp.asarray(rows, x.dtype)

    return jnp.einsum("ih,jw,nhwc->nijc", weights(x.shape[1]), weights(x.shape[2]), x)


class VGG16(nn.Module):
    """The five blocks' last ReLU outputs, and with `fc` the classifier's fc2 output (after
    ReLU), of images already normalised as the weights expect."""

    widths: Sequence[int]  # output channels of the 13 convolutions
    fc_width: int = 4096

    @nn.compact
    def __call__(self, x: jnp.ndarray, fc: bool = False):
        widths = iter(self.widths)
        blocks = []
        for b, block in enumerate(BLOCKS):
            if b:
                x = nn.max_pool(x, (2, 2), (2, 2))
            for index in block:
                x = nn.relu(nn.Conv(next(widths), (3, 3), padding=1, name=f"features_{index}")(x))
            blocks.append(x)
        if not fc:
            return blocks, None
        x = adaptive_average_pool(nn.max_pool(x, (2, 2), (2, 2)), POOL_SIZE)
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # torch flattens channels first
        for index in FC_INDICES:
            x = nn.relu(nn.Dense(self.fc_width, name=f"classifier_{index}")(x))
        return blocks, x


def normalize_channels(x: jnp.ndarray) -> jnp.ndarray:
    """Each pixel's feature vector divided by (its L2 norm + LPIPS_EPS)."""
    return x / (jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True)) + LPIPS_EPS)


class LPIPS(nn.Module):
    """LPIPS distance [N] between image batches in [-1, 1] (NHWC, RGB). Params: 'vgg' (VGG16)
    and 'lin0' ... 'lin4' (the heads' per-channel weights)."""

    widths: Sequence[int]

    def setup(self):
        self.vgg = VGG16(self.widths)
        ends = [sum(len(b) for b in BLOCKS[:i + 1]) - 1 for i in range(len(BLOCKS))]
        self.lins = [self.param(f"lin{i}", nn.initializers.ones, (self.widths[e],))
                     for i, e in enumerate(ends)]

    def embed(self, x: jnp.ndarray) -> list[jnp.ndarray]:
        """The unit-normalised features of each layer: compute a fixed image's once."""
        shift, scale = jnp.asarray(LPIPS_SHIFT), jnp.asarray(LPIPS_SCALE)
        return [normalize_channels(f) for f in self.vgg((x - shift) / scale)[0]]

    def compare(self, e0: list[jnp.ndarray], e1: list[jnp.ndarray]) -> jnp.ndarray:
        """The distance [N] between two batches of `embed`dings."""
        total = 0.0
        for f0, f1, lin in zip(e0, e1, self.lins, strict=True):
            total = total + jnp.mean(jnp.square(f0 - f1) @ lin, axis=(1, 2))
        return total

    def __call__(self, x0: jnp.ndarray, x1: jnp.ndarray) -> jnp.ndarray:
        both = self.embed(jnp.concatenate([x0, x1]))
        return self.compare(*zip(*(jnp.split(f, 2) for f in both), strict=True))


def imagenet_features(vgg: VGG16, params: dict, pixels: jnp.ndarray,
                      size: int = 224) -> jnp.ndarray:
    """fc2 features of [0, 255] pixel values, resized to size x size (bilinear, antialiased
    when shrinking) and normalised as torchvision's ImageNet models expect."""
    if pixels.shape[-1] == 1:
        pixels = jnp.repeat(pixels, 3, axis=-1)
    if pixels.shape[1:3] != (size, size):
        pixels = jax.image.resize(pixels, (pixels.shape[0], size, size, 3), "linear")
    x = (pixels / 255 - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    return vgg.apply({"params": params}, x, fc=True)[1]
