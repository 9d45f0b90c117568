"""Small image folders, zips and readers for the data tests (independent of stylejax.data)."""

import io
import json
import os
import zipfile

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


def random_images(count: int, height: int, width: int, channels: int = 3,
                  seed: int = 0) -> np.ndarray:
    shape = (count, height, width) + ((channels,) if channels > 1 else ())
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_folder(root, images: np.ndarray, labels=None, subdir_every: int = 5) -> list[str]:
    """Writes images as PNG files in the stylegan2-ada layout 00000/img00000000.png, ...

    Returns the relative names in sorted order, which is the order a dataset must list them in.
    """
    names = []
    for i, image in enumerate(images):
        name = f"{i // subdir_every:05d}/img{i:08d}.png"
        os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
        Image.fromarray(image).save(os.path.join(root, name))
        names.append(name)
    if labels is not None:
        with open(os.path.join(root, "dataset.json"), "w") as f:
            json.dump({"labels": [[n, int(v)] for n, v in zip(names, labels, strict=True)]}, f)
    return names


def write_zip(path, images: np.ndarray, labels=None) -> list[str]:
    """The same layout as `write_folder`, in a zip like stylegan2-ada-pytorch's dataset_tool."""
    names = [f"{i // 5:05d}/img{i:08d}.png" for i in range(len(images))]
    with zipfile.ZipFile(path, "w") as z:
        for name, image in zip(names, images, strict=True):
            z.writestr(name, png_bytes(image))
        if labels is not None:
            z.writestr("dataset.json", json.dumps(
                {"labels": [[n, int(v)] for n, v in zip(names, labels, strict=True)]}))
    return names


def read_split(data_dir, name: str, split: str = "train") -> tuple[np.ndarray, np.ndarray | None]:
    """All (images uint8, labels or None) of a prepared split, in stored order, via plain TFDS."""
    builder = tfds.builder_from_directory(os.path.join(data_dir, name, "1.0.0"))
    source = builder.as_data_source(split=split)
    examples = [source[i] for i in range(len(source))]
    images = np.stack([e["image"] for e in examples])
    labels = np.array([e["label"] for e in examples]) if "label" in examples[0] else None
    return images, labels


def dataset_entries(data_dir) -> list[str]:
    """Everything at the top of a data dir, hidden staging folders included."""
    return sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []
