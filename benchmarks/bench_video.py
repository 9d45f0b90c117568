"""Video speed: frames per second of `stylejax.sample video`, drawing alone and drawing + encoding.

    python benchmarks/bench_video.py                 # paper256, untrained: 256x256, 8 mapping layers
    python benchmarks/bench_video.py --resolution 16 --channel-base 256 --channel-max 32 --mapping 2

A walk through W (--kind walk_w) of --frames frames in batches of --batch, after a warm-up pass
that compiles: frames/s of the frames alone (stylejax.video.frame_batches) and of the whole video
written as MP4 (H.264) and GIF, with the compiles after warm-up (which must be 0).
"""

import argparse
import os
import tempfile
import time

import jax
from bench_train import CompileCounter, benchmark_config, cli_arguments, report

from stylejax import video
from stylejax.figures import Renderer
from stylejax.host_memory import keep_freed_host_memory
from stylejax.networks import build_networks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli_arguments(parser)
    parser.set_defaults(resolution=256, channel_base=16384, channel_max=512, mapping=8, batch=8)
    parser.add_argument("--frames", type=int, default=32, help="frames per timed video")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    keep_freed_host_memory()  # as stylejax.sample does

    compiles = CompileCounter()
    G, _ = build_networks(benchmark_config(args), 0, 3)
    variables = jax.jit(lambda key: G.init({"params": key, "noise": key},
                                           jax.numpy.zeros((1, G.z_dim))))(jax.random.key(0))
    renderer = Renderer(G, variables, batch=args.batch)
    animation = video.style_walk(renderer, [0, 1])
    per_key = args.frames // animation.num_keys

    def draw() -> None:
        for _ in video.frame_batches(renderer, animation, per_key):
            pass

    start = time.perf_counter()
    draw()  # warm-up: compiles
    warmup_s = time.perf_counter() - start
    before = compiles.count
    timings = {}
    with tempfile.TemporaryDirectory() as out:
        for name, run in [("draw", draw)] + [
                (fmt, lambda fmt=fmt: video.write_video(
                    os.path.join(out, f"walk.{fmt}"), video.frame_batches(renderer, animation, per_key),
                    per_key * animation.num_keys, 24)) for fmt in video.FORMATS]:
            start = time.perf_counter()
            run()
            timings[name] = per_key * animation.num_keys / (time.perf_counter() - start)
    report({
        "device": f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})",
        "resolution": G.resolution, "config": vars(args), "frames": per_key * animation.num_keys,
        "warmup_s": warmup_s, "frames_per_s_drawing": timings["draw"],
        "frames_per_s_mp4": timings["mp4"], "frames_per_s_gif": timings["gif"],
        "recompiles_after_warmup": compiles.count - before,
    }, args.json)


if __name__ == "__main__":
    main()
