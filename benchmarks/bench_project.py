"""Projector speed (issue 28): optimisation steps per second of `stylejax.projection.Projector`
on the default experiment's generator (untrained: 16x16 digits) with LPIPS on a full-size VGG16.

    python benchmarks/bench_project.py [--batch 1,8] [--steps 50]

The VGG16 and LPIPS weights are random with the real files' shapes (speed does not depend on the
values), so nothing needs downloading. Each batch size compiles once (timed with its first run),
then runs again for the figure: target-steps per second = batch x steps / seconds.
"""

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "experiments"))

import default  # noqa: E402  (experiments/default.py)

from stylejax.metrics.vgg import LPIPS  # noqa: E402
from stylejax.networks import build_networks  # noqa: E402
from stylejax.projection import Projector, Schedule  # noqa: E402

VGG16_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    G, _ = build_networks(default.get_config(), 0, 1)
    z = jnp.zeros((1, G.z_dim))
    variables = jax.jit(lambda key: G.init({"params": key, "noise": key}, z))(jax.random.key(0))
    lpips = LPIPS(VGG16_WIDTHS)
    size = (1, G.resolution, G.resolution, 3)
    params = jax.jit(lambda key: lpips.init(key, jnp.zeros(size), jnp.zeros(size)))(
        jax.random.key(1))["params"]
    schedule = Schedule(num_steps=args.steps)
    for batch in map(int, args.batch.split(",")):
        projector = Projector(G, variables, lpips, params, schedule)
        targets = jax.random.uniform(jax.random.key(2), (batch, G.resolution, G.resolution,
                                                         G.img_channels), minval=-1, maxval=1)
        start = time.perf_counter()
        projector(targets)
        first = time.perf_counter() - start
        start = time.perf_counter()
        projector(targets)
        seconds = time.perf_counter() - start
        print(json.dumps({"batch": batch, "steps": args.steps, "device": jax.devices()[0].device_kind,
                          "compile_and_first_run_s": round(first, 2), "run_s": round(seconds, 2),
                          "steps_per_s": round(args.steps / seconds, 2),
                          "target_steps_per_s": round(batch * args.steps / seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()
