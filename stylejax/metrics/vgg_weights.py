"""VGG16 and LPIPS weights from the files users download, read without torch.

torchvision's ImageNet VGG16 (`vgg16-397923af.pth`) is a state dict: `features.I.weight`
[out, in, 3, 3] and `.bias` for each convolution I, `classifier.{0,3,6}.weight` [out, in] and
`.bias`. The LPIPS v0.1 heads (`vgg.pth` of the LPIPS project) are `linL.model.1.weight`
[1, C, 1, 1] for L = 0..4. Every shape is checked against the network built from them, so a
different file is refused with the tensor that differs. NVIDIA's metrics `vgg16.pt` is a
TorchScript archive (compiled code whose forward pass is in the file) and is not read.
"""

import hashlib
import os

import numpy as np

from stylejax.errors import NetworkFileError
from stylejax.metrics.errors import MetricsError
from stylejax.metrics.vgg import BLOCKS, CONV_INDICES, FC_INDICES, POOL_SIZE
from stylejax.official.torch_save import state_dict

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_URL = ("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"
             "vgg.pth")
VGG16_HOW = (f"download torchvision's VGG16 {VGG16_URL} and give its path with "
             "--config.vgg16_path (training) or --vgg16 (stylejax.evaluate, stylejax.project)")
LPIPS_HOW = (f"download the LPIPS v0.1 VGG heads {LPIPS_URL} and give its path with "
             "--config.lpips_path (training) or --lpips (stylejax.evaluate, stylejax.project)")


def _read(path: str | None, what: str, how: str) -> tuple[dict[str, np.ndarray], str]:
    """The state dict at `path` and the file's sha256."""
    if not path:
        raise MetricsError(f"{what} needs its weights file: {how}")
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise MetricsError(f"{what} weights file {path} does not exist: {how}")
    try:
        tensors = state_dict(path)
    except NetworkFileError as e:
        raise MetricsError(f"{e}; {how}") from None
    with open(path, "rb") as f:
        return tensors, hashlib.sha256(f.read()).hexdigest()


def _take(tensors: dict, key: str, shape: tuple | None, path: str) -> np.ndarray:
    if key not in tensors:
        raise MetricsError(f"{path} has no tensor {key}: not torchvision's VGG16 / the LPIPS heads")
    value = tensors[key]
    if shape is not None and value.shape != shape:
        raise MetricsError(f"{path}: {key} has shape {value.shape}, the network needs {shape}")
    return value


def load_vgg16(path: str | None) -> tuple[dict, tuple[int, ...], int, str]:
    """(Flax params of `vgg.VGG16`, conv widths, fc width, sha256 of the file) from
    torchvision's VGG16 state dict."""
    tensors, digest = _read(path, "VGG16", VGG16_HOW)
    params, widths, channels = {}, [], 3
    for index in CONV_INDICES:
        weight = _take(tensors, f"features.{index}.weight", None, path)
        if weight.ndim != 4 or weight.shape[1:] != (channels, 3, 3):
            raise MetricsError(f"{path}: features.{index}.weight has shape {weight.shape}, the "
                               f"network needs [out, {channels}, 3, 3]")
        channels = weight.shape[0]
        widths.append(channels)
        params[f"features_{index}"] = {
            "kernel": weight.transpose(2, 3, 1, 0),
            "bias": _take(tensors, f"features.{index}.bias", (channels,), path)}
    fc_in = channels * POOL_SIZE * POOL_SIZE
    fc_width = _take(tensors, "classifier.0.weight", None, path).shape[0]
    for index in FC_INDICES:
        weight = _take(tensors, f"classifier.{index}.weight", (fc_width, fc_in), path)
        params[f"classifier_{index}"] = {
            "kernel": weight.T, "bias": _take(tensors, f"classifier.{index}.bias", (fc_width,), path)}
        fc_in = fc_width
    return params, tuple(widths), fc_width, digest


def load_lpips(vgg16_path: str | None, lpips_path: str | None) -> tuple[dict, tuple[int, ...], str]:
    """(Flax params of `vgg.LPIPS`, conv widths, a fingerprint of both files)."""
    vgg, widths, _, vgg_digest = load_vgg16(vgg16_path)
    tensors, lpips_digest = _read(lpips_path, "LPIPS", LPIPS_HOW)
    params = {"vgg": {k: v for k, v in vgg.items() if k.startswith("features_")}}
    for i, block in enumerate(BLOCKS):
        width = widths[CONV_INDICES.index(block[-1])]
        params[f"lin{i}"] = _take(tensors, f"lin{i}.model.1.weight", (1, width, 1, 1),
                                  lpips_path).reshape(width)
    return params, widths, hashlib.sha256((vgg_digest + lpips_digest).encode()).hexdigest()
