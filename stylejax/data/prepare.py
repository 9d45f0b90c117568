"""Turns a folder of images, a zip or a TFDS dataset into a stylejax dataset (array_record TFDS).

    python -m stylejax.data.prepare --source PATH --name NAME --resolution R [--data_dir D]
        [--crop center|pad] [--filter box|lanczos] [--max_images N] [--channels 1|3]
        [--overwrite] [--workers W]

PATH is a folder tree of images, a .zip of images (a stylegan2-ada-pytorch dataset zip's
dataset.json labels are kept), or tfds:NAME for a TFDS dataset already prepared in the data dir
(any file format and image size; all its splits are converted). Images are read in sorted file
name order; unreadable ones are reported and skipped. The result is read by
`InputPipeline(NAME, data_dir=D)`.
"""

import collections
import concurrent.futures
import dataclasses
import itertools
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterable, Iterator

from absl import flags

from stylejax import cli
from stylejax.data import builder
from stylejax.data.digits import digits_name
from stylejax.data.errors import DatasetError
from stylejax.data.images import CROPS, FILTERS, try_prepare_image
from stylejax.data.sources import Item, open_source
from stylejax.errors import SignalStopError

log = logging.getLogger("stylejax.data.prepare")  # not __name__: that is __main__ under -m


@dataclasses.dataclass
class Summary:
    """What a prepare run wrote: images per split, and the files it skipped with the reason."""

    name: str
    path: str
    resolution: int
    channels: int
    num_classes: int
    counts: dict[str, int]
    skipped: list[tuple[str, str]]


def _read(items: Iterable[Item], skipped: list[tuple[str, str]]) -> Iterator[tuple[Item, bytes]]:
    for item in items:
        try:
            yield item, item.read()
        except Exception as e:  # noqa: BLE001 - any read failure (CRC, I/O) skips that one file
            log.warning("skipped unreadable file %s (%s: %s)", item.name, type(e).__name__, e)
            skipped.append((item.name, f"{type(e).__name__}: {e}"))


def _convert(items: Iterable[Item], options: tuple, executor: concurrent.futures.Executor | None,
             window: int, skipped: list[tuple[str, str]]) -> Iterator[tuple[Item, bytes | None]]:
    """(item, PNG or None) in source order; with an executor, `window` images are in flight."""
    if executor is None:
        for item, data in _read(items, skipped):
            yield item, _checked(item, try_prepare_image(data, *options), skipped)
        return
    pending: collections.deque = collections.deque()
    for item, data in _read(items, skipped):
        pending.append((item, executor.submit(try_prepare_image, data, *options)))
        if len(pending) >= window:
            item, future = pending.popleft()
            yield item, _checked(item, future.result(), skipped)
    while pending:
        item, future = pending.popleft()
        yield item, _checked(item, future.result(), skipped)


def _checked(item: Item, result: tuple[bytes | None, str | None],
             skipped: list[tuple[str, str]]) -> bytes | None:
    png, error = result
    if png is None:
        log.warning("skipped unreadable image %s (%s)", item.name, error)
        skipped.append((item.name, error))
    return png


def _examples(converted: Iterator[tuple[Item, bytes | None]], max_images: int | None,
              where: str) -> Iterator[tuple[bytes, int | None]]:
    """(PNG, label) for at most `max_images` readable images.

    The first one is looked for right away, so that a split without any readable image fails
    before TFDS starts writing.
    """
    valid = ((png, item.label) for item, png in converted if png is not None)
    first = next(valid, None)
    if first is None:
        raise DatasetError(f"none of the images in {where} could be read (see the warnings "
                           "above); nothing was written")
    return itertools.islice(itertools.chain([first], valid), max_images)


def prepare(source: str, name: str, resolution: int, *, data_dir: str | None = None,
            crop: str = "center", resize_filter: str = "box", max_images: int | None = None,
            channels: int = 3, overwrite: bool = False, workers: int = 1) -> Summary:
    """Prepares `source` as the dataset `name` in `data_dir`; see the module docstring.

    Raises DatasetError (with a one-line message) for any bad input; nothing is written then.
    """
    builder.check_resolution(resolution)
    if digits_name(name) is not None:
        raise DatasetError(f"dataset names digits and digits<R> are reserved for the built-in "
                           f"digits dataset; choose another name than {name!r}")
    builder.check_name(name)
    if crop not in CROPS:
        raise DatasetError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
    if resize_filter not in FILTERS:
        raise DatasetError(f"filter must be one of {', '.join(FILTERS)}, got {resize_filter!r}")
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    if max_images is not None and max_images < 1:
        raise DatasetError(f"max-images must be at least 1, got {max_images}")
    data_dir = os.path.abspath(os.path.expanduser(data_dir or builder.default_data_dir()))
    if not overwrite:  # before reading any image; write_dataset checks again at the end
        builder.check_free(name, data_dir)

    options = (resolution, crop, resize_filter, channels)
    skipped: list[tuple[str, str]] = []
    executor = None
    if workers > 1:  # spawn: forking a process that runs TensorFlow threads can deadlock
        executor = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        with open_source(source, data_dir) as src:
            splits = {s: _examples(_convert(items, options, executor, 4 * workers, skipped),
                                   max_images, f"{src.description} (split {s})")
                      for s, items in src.splits.items()}
            settings = f"crop={crop} filter={resize_filter} channels={channels}" + (
                f" max_images={max_images}" if max_images else "")
            counts = builder.write_dataset(
                name, data_dir, splits, resolution=resolution, channels=channels,
                num_classes=src.num_classes, overwrite=overwrite,
                description=f"Prepared by stylejax.data.prepare from {src.description} "
                            f"at {resolution}x{resolution} ({settings}).")
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    if skipped:
        log.warning("skipped %d unreadable image(s)", len(skipped))
    path = os.path.join(data_dir, name, builder.VERSION)
    return Summary(name, path, resolution, channels, src.num_classes, counts, skipped)


FLAGS = flags.FlagValues()
flags.DEFINE_string("source", None, "folder tree of images, .zip (e.g. a stylegan2-ada-pytorch dataset "
                                    "zip with dataset.json labels), or tfds:NAME from the data dir",
                    flag_values=FLAGS)
flags.DEFINE_string("name", None, "dataset name, e.g. my_faces", flag_values=FLAGS)
flags.DEFINE_integer("resolution", None, "power of two, e.g. 256", flag_values=FLAGS)
flags.mark_flags_as_required(["source", "name", "resolution"], flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "where datasets live (default $STYLEJAX_DATA_DIR, "
                                      "$TFDS_DATA_DIR or ~/tensorflow_datasets)", flag_values=FLAGS)
flags.DEFINE_enum("crop", "center", CROPS, "non-square images: cut the centre square or pad with "
                                           "black", flag_values=FLAGS)
flags.DEFINE_enum("filter", "box", tuple(FILTERS), "resize filter; box reproduces the published "
                                                   "FFHQ-256 setup", flag_values=FLAGS)
flags.DEFINE_integer("max_images", None, "keep the first N readable images (per split)",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_enum("channels", "3", ("1", "3"), "3: RGB (grey replicated), 1: grey (colour converted "
                                               "by luma)", flag_values=FLAGS)
flags.DEFINE_bool("overwrite", False, "replace an existing dataset of the same name",
                  flag_values=FLAGS)
flags.DEFINE_integer("workers", os.cpu_count() or 1, "processes that decode and resize images "
                                                     "(default: all cores)", lower_bound=1,
                     flag_values=FLAGS)


def prepare_from_flags(positional: list[str]) -> None:
    """Prepares the dataset the flags describe and prints one line of what was written; SIGTERM
    cleans up as Ctrl-C does, and either leaves nothing behind."""
    if positional:
        raise DatasetError(f"unexpected arguments {' '.join(positional)!r}: every option is a --flag")

    received = []

    def interrupt(signum, _frame):  # unwinds as Ctrl-C does
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        with cli.readable_logging():
            summary = prepare(FLAGS.source, FLAGS.name, FLAGS.resolution, data_dir=FLAGS.data_dir,
                              crop=FLAGS.crop, resize_filter=FLAGS.filter,
                              max_images=FLAGS.max_images, channels=int(FLAGS.channels),
                              overwrite=FLAGS.overwrite, workers=FLAGS.workers)
    except KeyboardInterrupt:
        raise SignalStopError("interrupted; nothing was written",
                              received[0] if received else signal.SIGINT) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items())
    classes = f", {summary.num_classes} classes" if summary.num_classes else ""
    skipped = f"; skipped {len(summary.skipped)} unreadable" if summary.skipped else ""
    print(f"prepared {summary.name}: {counts} images of {summary.resolution}x{summary.resolution}"
          f"x{summary.channels}{classes}{skipped} -> {summary.path}")


def main(argv: list[str] | None = None) -> int:
    """The CLI on `argv` (sys.argv[1:] when None); returns the exit status."""
    return cli.run(prepare_from_flags, FLAGS, __doc__,
                   ["stylejax.data.prepare", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
