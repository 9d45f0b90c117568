"""Datasets: preparing images as TFDS datasets and reading them as deterministic global batches.

Modules: `errors` (the one exception users see), `images` (decode / crop / resize one image),
`sources` (image folders, zips and TFDS datasets as ordered lists of images), `builder` (writes
an array_record TFDS dataset atomically, finds datasets by name), `digits` (the offline default
dataset), `prepare` (the CLI) and `pipeline` (`InputPipeline`, global batches read, decoded and
prefetched with Grain, and `to_global`).
"""

import os

# TensorFlow is used here only on the host, to write and decode images. Its C++ start-up chatter
# (INFO lines, the oneDNN notice) is noise in a JAX program; warnings and errors still show.
# `setdefault` leaves any value the user chose alone.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
