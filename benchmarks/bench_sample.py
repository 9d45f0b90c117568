"""G_ema sampling speed: images per second from latents to pixels, as `stylejax.sample` renders them.

    python benchmarks/bench_sample.py                     # the benchmark config (issue 8)
    python benchmarks/bench_sample.py --resolution 256 --channel-base 16384 --channel-max 512 \
        --mapping 8 --batch 16 --json out.json            # paper256

One call = mapping (with truncation psi 0.7) + synthesis with random noise for a batch of latents,
sharded on 'data' over all devices. Numbers are medians of timed calls after warm-up, with the
compile time and the number of compiles after warm-up (which must be 0).
"""

import argparse
import json
import time

import jax
import numpy as np
from bench_train import CompileCounter, peak_memory_bytes
from jax.sharding import NamedSharding, PartitionSpec

from stylejax.configs import base_config
from stylejax.train.programs import make_mesh
from stylejax.train.state import build_networks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--channel-base", type=int, default=4096)
    parser.add_argument("--channel-max", type=int, default=128)
    parser.add_argument("--mapping", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--modconv", choices=("shared", "fused"), default="shared")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    compiles = CompileCounter()
    config = base_config()
    config.resolution = args.resolution
    config.model.update(channel_base=args.channel_base, channel_max=args.channel_max,
                        mapping_layers=args.mapping, z_dim=512, w_dim=512, dtype=args.dtype,
                        modconv=args.modconv)
    G, _ = build_networks(config, 0, 3)
    mesh = make_mesh()
    split = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())

    z = jax.device_put(jax.random.normal(jax.random.key(0), (args.batch, G.z_dim)), split)
    variables = jax.jit(lambda key: G.init({"params": key, "noise": key}, z[:1]),
                        out_shardings=replicated)(jax.random.key(1))
    render = jax.jit(lambda variables, z, key: G.apply(variables, z, truncation_psi=0.7,
                                                       rngs={"noise": key}),
                     out_shardings=split)

    compiles_before = compiles.count
    start = time.perf_counter()
    jax.block_until_ready(render(variables, z, jax.random.key(2)))
    first_call_s = time.perf_counter() - start
    compile_s = sum(compiles.durations[compiles_before:])
    compiles_before = compiles.count
    times = []
    for i in range(args.repeats):
        start = time.perf_counter()
        jax.block_until_ready(render(variables, z, jax.random.key(3 + i)))
        times.append(time.perf_counter() - start)
    recompiles = compiles.count - compiles_before

    call_s = float(np.median(times))
    results = {
        "device": f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})",
        "config": vars(args),
        "img_per_s": args.batch / call_s, "call_s_median": call_s, "call_s_all": times,
        "compile_s": compile_s, "first_call_s": first_call_s,
        "peak_memory_bytes": peak_memory_bytes(), "recompiles_after_warmup": recompiles,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if recompiles:
        raise SystemExit(f"error: {recompiles} recompiles after warm-up")


if __name__ == "__main__":
    main()
