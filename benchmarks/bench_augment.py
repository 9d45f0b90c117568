"""Milliseconds per call of an augmentation pipe (issue 25), forward and forward + backward.

    python benchmarks/bench_augment.py                  # bgc at p = 0.5: 32x32 batch 32, 256x256 batch 8
    python benchmarks/bench_augment.py --pipe bgcfnc --p 1

Each call draws and applies one batch's augmentations inside one compiled program (as the train
step does), on uniform noise images; medians over --repeats calls after a warm-up call. The
backward is the vector-Jacobian product G's phase takes through the augmentation of its fakes.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from stylejax.train.augment import PIPES, augment_pipe

SHAPES = ((32, 32, 32, 3), (8, 256, 256, 3))  # (batch, height, width, channels)


def median_ms(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipe", choices=tuple(PIPES), default="bgc")
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    pipe = augment_pipe(args.pipe)
    forward = jax.jit(pipe)
    backward = jax.jit(lambda x, p, key, cot: jax.vjp(lambda y: pipe(y, p, key), x)[1](cot)[0])
    results = {"device": f"{jax.devices()[0].device_kind} ({jax.default_backend()})",
               "pipe": args.pipe, "p": args.p}
    for shape in SHAPES:
        images = jax.random.uniform(jax.random.key(0), shape, minval=-1)
        p, key = jnp.float32(args.p), jax.random.key(1)
        name = f"{shape[1]}x{shape[2]} batch {shape[0]}"
        results[name] = {
            "forward_ms": median_ms(forward, images, p, key, repeats=args.repeats),
            "forward_backward_ms": median_ms(backward, images, p, key, images, repeats=args.repeats)}
        print(name, results[name], flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
