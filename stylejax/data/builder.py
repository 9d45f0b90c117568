"""Writing square-image TFDS datasets in the array_record format, and finding datasets by name.

Every dataset stylejax makes (the digits default and the prepare tool's) goes through
`write_dataset`: features {"image": PNG [R, R, C] uint8, "label": ClassLabel (when labelled)},
examples in the order given, stored as array_record so that the input pipeline can read any
example by index. It is written into a hidden staging folder inside `data_dir` and renamed into
place at the end, so an error or an interrupt never leaves a partial dataset under its name.
"""

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping

import tensorflow_datasets as tfds
from etils import epath

from stylejax.data.errors import DatasetError

VERSION = "1.0.0"
FILE_FORMAT = "array_record"
_NAME = re.compile(r"[a-z][a-z0-9_]*")

log = logging.getLogger(__name__)

# (PNG bytes, class index or None) for each image of a split.
Example = tuple[bytes, int | None]


def default_data_dir() -> str:
    """$STYLEJAX_DATA_DIR, else $TFDS_DATA_DIR, else ~/tensorflow_datasets.

    Falling back to TFDS's own default means catalogue datasets a user already has are found.
    """
    path = (os.environ.get("STYLEJAX_DATA_DIR") or os.environ.get("TFDS_DATA_DIR")
            or "~/tensorflow_datasets")
    return os.path.expanduser(path)


def check_resolution(resolution: int) -> None:
    """The networks double the resolution per block from 4x4, so only powers of two work."""
    if resolution < 4 or resolution & (resolution - 1):
        raise DatasetError(f"resolution must be a power of two >= 4 (4, 8, ..., 1024), "
                           f"got {resolution}")


def check_name(name: str) -> None:
    """A new dataset's name must be valid for TFDS and must not shadow a catalogue dataset."""
    if not _NAME.fullmatch(name):
        raise DatasetError(f"dataset name {name!r} is not valid: use lower case letters, digits "
                           "and '_', starting with a letter (e.g. my_faces)")
    if name in tfds.list_builders(with_community_datasets=False):
        raise DatasetError(f"dataset name {name!r} is taken by the TFDS catalogue; choose "
                           "another name")


def check_free(name: str, data_dir: str) -> None:
    """Refuses to write over an existing dataset unless asked to."""
    if os.path.exists(os.path.join(data_dir, name)):
        raise DatasetError(f"dataset {name!r} already exists in {data_dir}; pass --overwrite "
                           "(overwrite=True) to replace it")


def list_datasets(data_dir: str) -> list[str]:
    """Names of the prepared datasets in `data_dir` ('name' or 'name/config'), for messages."""
    root = epath.Path(data_dir)
    if not root.is_dir():
        return []
    found = {str(p.parent.parent.relative_to(root)) for p in root.glob("*/*/dataset_info.json")}
    found |= {str(p.parent.parent.relative_to(root)) for p in root.glob("*/*/*/dataset_info.json")}
    return sorted(n for n in found if not n.startswith((".", "downloads")))


def find_builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """The builder of a dataset already prepared in `data_dir`; never downloads anything."""
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        builder = None
    if builder is None or not builder.is_prepared():
        found = ", ".join(list_datasets(data_dir)) or "none"
        raise DatasetError(
            f"dataset {name!r} is not prepared in {data_dir} (found there: {found}); make it with "
            f"`python -m stylejax.data.prepare --source PATH --name NAME --resolution R "
            f"--data_dir {data_dir}`, or point data_dir / $STYLEJAX_DATA_DIR at where it is")
    return builder


def has_class_labels(features: tfds.features.FeaturesDict) -> bool:
    """Conditional training uses a 'label' ClassLabel feature when a dataset has one."""
    return "label" in features.keys() and isinstance(features["label"], tfds.features.ClassLabel)


class _Builder(tfds.dataset_builders.AdhocBuilder, skip_registration=True):
    """TFDS's builder for data given in code, made usable without `importlib_resources`.

    TFDS 4.9.10 looks for a checksums file next to the builder's source code, and that look-up
    imports the `importlib_resources` backport, which is not a declared dependency on Python >=
    3.9. Our datasets download nothing, so there is no code path to search.
    """

    code_path = None

    def _log_download_bytes(self) -> None:
        """Silenced: it says 'Downloading' and names the staging folder, both misleading here."""

    def _log_download_done(self) -> None:
        """Silenced for the same reason; `write_dataset` logs the final folder."""


def _features(resolution: int, channels: int, num_classes: int) -> tfds.features.FeaturesDict:
    features = {"image": tfds.features.Image(shape=(resolution, resolution, channels),
                                             encoding_format="png")}
    if num_classes:
        features["label"] = tfds.features.ClassLabel(num_classes=num_classes)
    return tfds.features.FeaturesDict(features)


def _examples(examples: Iterable[Example], labelled: bool):
    for key, (png, label) in enumerate(examples):
        yield key, ({"image": png, "label": label} if labelled else {"image": png})


def write_dataset(name: str, data_dir: str, splits: Mapping[str, Iterable[Example]], *,
                  resolution: int, channels: int, num_classes: int, description: str,
                  overwrite: bool = False) -> dict[str, int]:
    """Writes a dataset atomically into `data_dir/name/VERSION`; returns the split sizes.

    A dataset that already exists under `name` is refused unless `overwrite`; it is then replaced
    only once the new one is complete.
    """
    root = os.path.abspath(os.path.expanduser(data_dir))
    final = os.path.join(root, name)
    if not overwrite:
        check_free(name, root)
    os.makedirs(root, exist_ok=True)
    log.info("writing dataset %s to %s", name, final)
    staging = tempfile.mkdtemp(prefix=f".{name}.", suffix=".incomplete", dir=root)
    try:
        builder = _Builder(
            name=name, version=VERSION, data_dir=staging, description=description,
            features=_features(resolution, channels, num_classes), disable_shuffling=True,
            split_datasets={s: _examples(e, num_classes > 0) for s, e in splits.items()})
        builder.download_and_prepare(file_format=FILE_FORMAT)
        if overwrite and os.path.exists(final):
            os.rename(final, os.path.join(staging, "replaced"))
        try:
            os.rename(os.path.join(staging, name), final)
        except OSError:  # another process finished the same name meanwhile
            check_free(name, root)
            raise
        log.info("dataset %s is ready in %s", name, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {split: info.num_examples for split, info in builder.info.splits.items()}
