"""Where images come from: a folder tree, a zip (stylegan2-ada-pytorch's too) or a TFDS dataset.

A source is an ordered list of named items per split. The order is the sorted file name, so a
prepared dataset lists images in the same order on every machine, and the i-th image of a folder
is the i-th example of the dataset built from it.
"""

import contextlib
import dataclasses
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import tensorflow_datasets as tfds

from stylejax.data.builder import find_builder, has_class_labels
from stylejax.data.errors import DatasetError
from stylejax.data.images import EXTENSIONS

LABELS_FILE = "dataset.json"
TFDS_PREFIX = "tfds:"


@dataclasses.dataclass(frozen=True)
class Item:
    """One source image: a name for messages, its encoded bytes on demand, its class or None."""

    name: str
    read: Callable[[], bytes]
    label: int | None = None


@dataclasses.dataclass(frozen=True)
class Source:
    """A readable source: the items of each split (lazy for TFDS sources), and the number of
    classes (0 when unlabelled)."""

    description: str
    splits: dict[str, Iterable[Item]]
    num_classes: int


def _is_image(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(EXTENSIONS)


def _parse_labels(text: bytes, where: str) -> dict[str, int] | None:
    """Reads stylegan2-ada-pytorch's {"labels": [[file, class], ...]} (or "labels": null)."""
    try:
        labels = json.loads(text)["labels"]
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{where} is not a valid {LABELS_FILE} with a 'labels' list "
                           f"({type(e).__name__}: {e})") from None
    if labels is None:
        return None
    try:
        table = {str(name): label for name, label in labels}
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: 'labels' must be a list of [file name, class] "
                           "pairs") from None
    bad = [n for n, v in table.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        raise DatasetError(f"{where}: only non-negative integer class labels are supported, got "
                           f"{table[bad[0]]!r} for {bad[0]!r}")
    return table


def _labelled(names: list[str], read: Callable[[str], bytes], labels: dict[str, int] | None,
              where: str) -> tuple[list[Item], int]:
    """Pairs file names with their labels; every image must have one when labels are given."""
    if labels is None:
        return [Item(n, lambda n=n: read(n)) for n in names], 0
    missing = [n for n in names if n not in labels]
    if missing:
        raise DatasetError(f"{len(missing)} image(s) have no label in {where}, e.g. {missing[0]!r}")
    items = [Item(n, lambda n=n: read(n), labels[n]) for n in names]
    return items, max(labels.values(), default=-1) + 1


def _folder(path: str) -> Source:
    names = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(root, path)
        names += [f if rel == "." else f"{rel}/{f}".replace(os.sep, "/") for f in files]
    images = sorted(n for n in names if _is_image(n))
    if not images:
        raise DatasetError(f"no images found in folder {path} (looked for {', '.join(EXTENSIONS)})")
    labels_path = os.path.join(path, LABELS_FILE)
    labels = None
    if os.path.isfile(labels_path):
        with open(labels_path, "rb") as f:
            labels = _parse_labels(f.read(), labels_path)

    def read(name: str) -> bytes:
        with open(os.path.join(path, name), "rb") as f:
            return f.read()

    items, num_classes = _labelled(images, read, labels, labels_path)
    return Source(f"folder {path}", {"train": items}, num_classes)


def _zip(archive: zipfile.ZipFile, path: str) -> Source:
    members = {i.filename for i in archive.infolist() if not i.is_dir()}
    images = sorted(n for n in members if _is_image(n) and not n.startswith("__MACOSX/"))
    if not images:
        raise DatasetError(f"no images found in zip {path} (looked for {', '.join(EXTENSIONS)})")
    labels = None
    if LABELS_FILE in members:
        labels = _parse_labels(archive.read(LABELS_FILE), f"{path}:{LABELS_FILE}")
    items, num_classes = _labelled(images, archive.read, labels, f"{path}:{LABELS_FILE}")
    return Source(f"zip {path}", {"train": items}, num_classes)


def _tfds_items(examples: Iterable[dict[str, Any]]) -> Iterator[Item]:
    for i, example in enumerate(examples):
        label = int(example["label"]) if "label" in example else None
        yield Item(f"example {i}", lambda data=example["image"]: data, label)


def _tfds(name: str, data_dir: str) -> Source:
    """A prepared TFDS dataset in any file format, read in its stored order (never downloads)."""
    builder = find_builder(name, data_dir)
    features = builder.info.features
    if "image" not in features.keys() or not isinstance(features["image"], tfds.features.Image):
        raise DatasetError(f"TFDS dataset {name!r} has no 'image' feature; cannot prepare it")
    labelled = has_class_labels(features)
    keys = ("image", "label") if labelled else ("image",)
    splits = {}
    for split in builder.info.splits:
        dataset = builder.as_dataset(split=split, shuffle_files=False,
                                     decoders={"image": tfds.decode.SkipDecoding()})
        dataset = dataset.map(lambda e: {k: e[k] for k in keys})
        splits[split] = _tfds_items(tfds.as_numpy(dataset))
    num_classes = features["label"].num_classes if labelled else 0
    return Source(f"TFDS dataset {name} in {data_dir}", splits, num_classes)


@contextlib.contextmanager
def open_source(spec: str, data_dir: str) -> Iterator[Source]:
    """Opens a folder, a .zip, or 'tfds:NAME' (a dataset already prepared in `data_dir`)."""
    if spec.startswith(TFDS_PREFIX):
        yield _tfds(spec[len(TFDS_PREFIX):], data_dir)
    elif os.path.isdir(spec):
        yield _folder(spec)
    elif os.path.isfile(spec):
        try:
            archive = zipfile.ZipFile(spec)
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetError(f"{spec} is not a readable zip file ({e}); give a folder of images, "
                               "a .zip of images, or tfds:NAME") from None
        with archive:
            yield _zip(archive, spec)
    else:
        raise DatasetError(f"source {spec} does not exist")
