"""Images of any system, from a folder or a zip, made comparable with a dataset's.

Each image is decoded like a dataset image (`stylejax.data.images.decode`: transparency onto
black, grey to RGB or colour to grey as the dataset has it) and brought to the dataset's
resolution as the prepare tool's defaults do (centre crop, box filter), with a note saying so;
unreadable files are skipped with a warning.
"""

import logging
from collections.abc import Iterator

import numpy as np
from PIL import UnidentifiedImageError

from stylejax.data.images import DECODE_ERRORS, decode, resize, to_square
from stylejax.data.sources import open_source
from stylejax.metrics.errors import MetricsError

log = logging.getLogger(__name__)


def image_batches(path: str, resolution: int, channels: int, batch_size: int,
                  data_dir: str) -> Iterator[np.ndarray]:
    """Float batches [<= batch_size, R, R, C] in [-1, 1] of every readable image, sorted by name."""
    count, skipped, changed = 0, 0, {}
    batch = []
    with open_source(path, data_dir) as source:
        for item in (i for items in source.splits.values() for i in items):
            try:
                image = decode(item.read(), channels)
            except DECODE_ERRORS as e:
                reason = ("not an image file PIL can read"
                          if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}")
                log.warning("skipped unreadable file %s (%s)", item.name, reason)
                skipped += 1
                continue
            shape = image.shape[:2]
            if shape != (resolution, resolution):
                if shape not in changed:
                    log.warning("note: %s is %dx%d, not %dx%d like the dataset: centre-cropped to "
                                "a square and resized with the box filter, as the prepare tool "
                                "does (so are all such images)", item.name, shape[1], shape[0],
                                resolution, resolution)
                changed[shape] = changed.get(shape, 0) + 1
                image = resize(to_square(image, "center"), resolution, "box")
            batch.append(image)
            count += 1
            if len(batch) == batch_size:
                yield np.stack(batch).astype(np.float32) / 127.5 - 1
                batch = []
    if batch:
        yield np.stack(batch).astype(np.float32) / 127.5 - 1
    if count == 0:
        raise MetricsError(f"no readable images in {path} ({skipped} unreadable files skipped)")
    log.info("scored %d images from %s (%d resized, %d unreadable skipped)", count, path,
             sum(changed.values()), skipped)
