"""GFLOP/s of one convolution's forward, input gradient and weight gradient, against the matmul peak.

    python benchmarks/bench_conv.py                       # the benchmark config's 3x3 layers
    python benchmarks/bench_conv.py --batch 16 --size 32 --in-channels 128 --out-channels 512

The train step's time is mostly convolutions; this separates the three
convolutions each layer costs in training, so that a slow one (on XLA CPU, the
weight gradient) shows up on its own; weight_gradient_tuned is the same gradient
through stylejax/ops/cpu_conv.py, as the networks take it with model.impl="tuned" (summed
over batch chunks). The two matmul bounds are the weight gradient as matmuls over operands made for
free: nine per-tap [in, rows] @ [rows, out] (one timed, x 9), or one [9 in, rows] @ [rows, out]
over im2col patches, whose operand is nine times the input. 'same' 3x3, stride 1, NHWC / HWIO,
as the networks run them (the up-conv's polyphase kernel is 3x3 with 4x the output channels at
the input resolution: --out-channels 512 --size 16).
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from bench_train import matmul_peak_flops

from stylejax.host_memory import keep_freed_host_memory
from stylejax.models.conv import conv2d
from stylejax.ops.cpu_conv import CpuConv2d

SAME = ((1, 1), (1, 1))


def conv(x, w):
    return conv2d(x, w, SAME)


def median_seconds(fn, *args, repeats: int) -> float:
    fn = jax.jit(fn)
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32, help="height = width of the input")
    parser.add_argument("--in-channels", type=int, default=128)
    parser.add_argument("--out-channels", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    keep_freed_host_memory()  # as stylejax.main does

    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (args.batch, args.size, args.size, args.in_channels))
    w = jax.random.normal(keys[1], (3, 3, args.in_channels, args.out_channels)) * 0.03
    dy = jax.random.normal(keys[2], (args.batch, args.size, args.size, args.out_channels))
    rows, dy_rows = x.reshape(-1, args.in_channels), dy.reshape(-1, args.out_channels)
    seconds = {
        "forward": median_seconds(conv, x, w, repeats=args.repeats),
        "input_gradient": median_seconds(lambda w, dy: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0],
                                         w, dy, repeats=args.repeats),
        "weight_gradient": median_seconds(lambda x, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0],
                                          x, dy, repeats=args.repeats),
        "weight_gradient_tuned": median_seconds(
            lambda x, dy: jax.vjp(lambda w: CpuConv2d()(x, w, SAME), w)[1](dy)[0],
            x, dy, repeats=args.repeats),
        "tap_matmul_bound": 9 * median_seconds(jnp.matmul, rows.T, dy_rows, repeats=args.repeats),
        "im2col_matmul_bound": median_seconds(
            jnp.matmul, jnp.tile(rows.T, (9, 1)), dy_rows, repeats=args.repeats),
    }
    flops = 2 * args.batch * args.size ** 2 * 9 * args.in_channels * args.out_channels
    peak = matmul_peak_flops(2048 if jax.default_backend() == "cpu" else 8192)
    print(json.dumps({
        "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()})", "config": vars(args),
        "gflop_per_conv": flops / 1e9, "matmul_peak_gflop_per_s": peak / 1e9,
        **{name: {"ms": s * 1e3, "gflop_per_s": flops / s / 1e9, "ratio_to_peak": flops / s / peak}
           for name, s in seconds.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
