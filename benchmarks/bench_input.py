"""Input pipeline throughput (images/s) at 32 and 256 resolution on this machine.

    python benchmarks/bench_input.py [--runs 5] [--batch-size 64] [--threads 2] [--data-dir DIR]

32: the default digits dataset (digits32). 256: 2048 random 256x256 crops of scikit-learn's two
sample photographs (real photo statistics, so PNG decoding costs what it costs on photos),
prepared with `stylejax.data.prepare`. Each run opens a fresh pipeline, takes a few warm-up
batches, then times `iterate()` (the background-thread prefetcher the trainer uses, x-flip on)
over a fixed number of batches. Prints one line per run and the median per resolution.
"""

import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import jax
    import tensorflow as tf

    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"jax {jax.__version__}, tensorflow {tf.__version__}")


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


def measure(name: str, data_dir: str, batch_size: int, batches: int, threads: int) -> float:
    from stylejax.data.pipeline import InputPipeline

    data = InputPipeline(name, global_batch_size=batch_size, seed=0, data_dir=data_dir,
                         xflip=True)
    with data.iterate(0, prefetch=max(2, threads), threads=threads) as it:
        for _ in range(3):
            next(it)
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        elapsed = time.perf_counter() - start
    return batches * batch_size / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="iterate()'s threads (default 2)")
    parser.add_argument("--data-dir", default=None,
                        help="reuse datasets here (default: a temporary folder)")
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
        for resolution, name, batches in ((32, "digits", 200), (256, "photos256", 30)):
            rates = [measure(name, data_dir, args.batch_size, batches, args.threads)
                     for _ in range(args.runs)]
            print(f"{resolution}x{resolution} ({name}): runs "
                  + " ".join(f"{r:.0f}" for r in rates)
                  + f" images/s; median {statistics.median(rates):.0f} images/s")


if __name__ == "__main__":
    main()
