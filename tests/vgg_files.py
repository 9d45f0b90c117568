"""Random-weight VGG16 / LPIPS files in torchvision's and the LPIPS project's layouts (few
channels), and a slow numpy VGG16 / LPIPS in torch's NCHW layout to check the Flax ones against."""

import math

import numpy as np

from tests import official_files as of

WIDTHS = (4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8)
FC_WIDTH = 16
CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
BLOCK_ENDS = (2, 7, 14, 21, 28)


def vgg16_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """torchvision's vgg16 state dict layout, He-scaled random weights."""
    rng = np.random.default_rng(seed)
    tensors, channels = {}, 3
    for index, width in zip(CONVS, WIDTHS, strict=True):
        tensors[f"features.{index}.weight"] = (rng.normal(size=(width, channels, 3, 3))
                                               * math.sqrt(2 / (9 * channels))).astype(np.float32)
        tensors[f"features.{index}.bias"] = rng.normal(0, 0.1, width).astype(np.float32)
        channels = width
    fan_in = channels * 49
    for index, (out, inp) in {0: (FC_WIDTH, fan_in), 3: (FC_WIDTH, FC_WIDTH), 6: (10, FC_WIDTH)}.items():
        tensors[f"classifier.{index}.weight"] = (rng.normal(size=(out, inp))
                                                 * math.sqrt(2 / inp)).astype(np.float32)
        tensors[f"classifier.{index}.bias"] = rng.normal(0, 0.1, out).astype(np.float32)
    return tensors


def lpips_tensors(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    widths = [WIDTHS[CONVS.index(e)] for e in BLOCK_ENDS]
    return {f"lin{i}.model.1.weight": rng.uniform(0, 1, (1, w, 1, 1)).astype(np.float32)
            for i, w in enumerate(widths)}


def write_weights(folder, zip_format: bool = True) -> tuple[str, str]:
    """(vgg16 path, lpips path): a zip-format torchvision file and a legacy-format LPIPS one,
    as the real files are (unless zip_format is False)."""
    vgg, lpips = folder / "vgg16.pth", folder / "vgg.pth"
    of.write_state_dict(vgg, vgg16_tensors(), zip_format=zip_format)
    of.write_state_dict(lpips, lpips_tensors(), zip_format=False)
    return str(vgg), str(lpips)


def _conv(x, w, b):
    n, _, h, wd = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nchw,oc->nohw", padded[:, :, dy:dy + h, dx:dx + wd], w[:, :, dy, dx])
    return out + b[None, :, None, None]


def _max_pool(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _adaptive_pool(x, size=7):
    n, c, h, w = x.shape
    out = np.zeros((n, c, size, size))
    for i in range(size):
        for j in range(size):
            rows = slice(math.floor(i * h / size), math.ceil((i + 1) * h / size))
            cols = slice(math.floor(j * w / size), math.ceil((j + 1) * w / size))
            out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return out


def numpy_vgg16(tensors, x_nchw):
    """(relu1_2 ... relu5_3 in NCHW, fc2 after ReLU), float64."""
    x = np.asarray(x_nchw, np.float64)
    blocks = []
    for index in range(31):
        if f"features.{index}.weight" in tensors:
            x = np.maximum(_conv(x, tensors[f"features.{index}.weight"].astype(np.float64),
                                 tensors[f"features.{index}.bias"].astype(np.float64)), 0)
            if index in BLOCK_ENDS:
                blocks.append(x)
        elif index in (4, 9, 16, 23, 30):
            x = _max_pool(x)
    x = _adaptive_pool(x).reshape(len(x), -1)
    for index in (0, 3):
        x = np.maximum(x @ tensors[f"classifier.{index}.weight"].T.astype(np.float64)
                       + tensors[f"classifier.{index}.bias"], 0)
    return blocks, x


def numpy_lpips(vgg, lins, x0_nhwc, x1_nhwc):
    """LPIPS v0.1 as the LPIPS project computes it, inputs in [-1, 1]."""
    shift = np.array([-.030, -.088, -.188])[None, :, None, None]
    scale = np.array([.458, .448, .450])[None, :, None, None]
    feats = [numpy_vgg16(vgg, (np.transpose(x, (0, 3, 1, 2)) - shift) / scale)[0]
             for x in (x0_nhwc, x1_nhwc)]
    total = 0
    for i, (f0, f1) in enumerate(zip(*feats, strict=True)):
        n0 = f0 / (np.sqrt((f0 ** 2).sum(axis=1, keepdims=True)) + 1e-10)
        n1 = f1 / (np.sqrt((f1 ** 2).sum(axis=1, keepdims=True)) + 1e-10)
        w = lins[f"lin{i}.model.1.weight"].astype(np.float64)
        total = total + (((n0 - n1) ** 2) * w).sum(axis=1).mean(axis=(1, 2))
    return total
