"""Input pipeline throughput (images/s) at 32 and 256 resolution on this machine.

    python benchmarks/bench_input.py [--runs 5] [--batch_size 64] [--threads 2] [--data_dir DIR]
                                     [--tfds_decoding]

32: the default digits dataset (digits32). 256: 2048 random 256x256 crops of scikit-learn's two
sample photographs (real photo statistics, so PNG decoding costs what it costs on photos),
prepared with `stylejax.data.prepare`. Each run opens a fresh pipeline, takes a few warm-up
batches, then times `iterate()` (Grain's threaded prefetch, as the trainer uses it, x-flip on)
over a fixed number of batches. Prints one line per run and the median per resolution.
`--tfds_decoding` also times the same Grain pipeline decoding with TFDS's own numpy decoder
instead of stylejax's TF function: the measurement behind keeping the TF function.
"""

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import grain
    import jax
    import tensorflow as tf

    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"jax {jax.__version__}, tensorflow {tf.__version__}, grain {grain.__version__}")


def make_photo_dataset(data_dir: str, count: int) -> None:
    """Writes `count` random 256x256 crops of sklearn's sample photos and prepares them."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from stylejax.data.prepare import prepare

    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for i in range(count):
            photo = photos[i % len(photos)]
            y = rng.integers(0, photo.shape[0] - 256 + 1)
            x = rng.integers(0, photo.shape[1] - 256 + 1)
            Image.fromarray(photo[y:y + 256, x:x + 256]).save(os.path.join(folder, f"{i:05d}.png"))
        prepare(folder, "photos256", 256, data_dir=data_dir, workers=os.cpu_count() or 1)


def time_batches(batches: Iterator[Any], batch_size: int, count: int) -> float:
    """images/s over `count` batches, after 3 warm-up ones."""
    for _ in range(3):
        next(batches)
    start = time.perf_counter()
    for _ in range(count):
        next(batches)
    return count * batch_size / (time.perf_counter() - start)


def measure(name: str, data_dir: str, batch_size: int, batches: int, threads: int) -> float:
    from stylejax.data.pipeline import InputPipeline

    data = InputPipeline(name, global_batch_size=batch_size, seed=0, data_dir=data_dir,
                         xflip=True)
    with data.iterate(0, prefetch=max(2, threads), threads=threads) as it:
        return time_batches(it, batch_size, batches)


def measure_tfds_decoding(name: str, data_dir: str, batch_size: int, batches: int,
                          threads: int) -> float:
    """The same Grain pipeline, decoding each example with TFDS's numpy decoder (PIL)."""
    import grain

    from stylejax.data.builder import find_builder
    from stylejax.data.digits import digits_name

    # `measure` ran first and built digits32
    source = find_builder(digits_name(name) or name, data_dir).as_data_source(split="train")

    def flip_and_scale(example: dict, rng: np.random.Generator) -> np.ndarray:
        image = example["image"][:, ::-1] if rng.random() < 0.5 else example["image"]
        return image.astype(np.float32) / np.float32(127.5) - np.float32(1)

    dataset = (grain.MapDataset.source(source).shuffle(0).repeat()
               .random_map(flip_and_scale, seed=1).batch(batch_size))
    options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(2, threads))
    it = iter(dataset.to_iter_dataset(options))
    try:
        return time_batches(it, batch_size, batches)
    finally:
        it.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="iterate()'s threads (default 2)")
    parser.add_argument("--data_dir", default=None,
                        help="reuse datasets here (default: a temporary folder)")
    parser.add_argument("--tfds_decoding", action="store_true",
                        help="also time Grain with TFDS's numpy decoding instead of the TF function")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or tmp
        if not os.path.isdir(os.path.join(data_dir, "photos256")):
            start = time.perf_counter()
            make_photo_dataset(data_dir, 2048)
            print(f"prepared photos256 (2048 images) in {time.perf_counter() - start:.1f} s")
        print(f"machine: {machine()}")
        print(f"batch size {args.batch_size}, iterate() with {args.threads} threads, x-flip on, "
              f"{args.runs} runs")
        variants = [("", measure)]
        if args.tfds_decoding:
            variants.append((", TFDS numpy decoding", measure_tfds_decoding))
        for resolution, name, batches in ((32, "digits", 200), (256, "photos256", 30)):
            for label, run in variants:
                rates = [run(name, data_dir, args.batch_size, batches, args.threads)
                         for _ in range(args.runs)]
                print(f"{resolution}x{resolution} ({name}{label}): runs "
                      + " ".join(f"{r:.0f}" for r in rates)
                      + f" images/s; median {statistics.median(rates):.0f} images/s")


if __name__ == "__main__":
    main()
