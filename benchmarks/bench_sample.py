"""G_ema sampling speed: images per second from latents to pixels, as `stylejax.sample` renders them.

    python benchmarks/bench_sample.py                     # the benchmark config (issue 8)
    python benchmarks/bench_sample.py --resolution 256 --channel-base 16384 --channel-max 512 \
        --mapping 8 --batch 16 --json out.json            # paper256
    python benchmarks/bench_sample.py --network ffhq.pkl --batch 8   # an official network file

One call = mapping (with truncation psi 0.7) + synthesis with random noise for a batch of latents,
sharded on 'data' over all devices. Numbers are medians of timed calls after warm-up, with the
compile time and the number of compiles after warm-up (which must be 0). With --network, the
file's G_ema (its architecture; the network flags are ignored) and the time to read and convert
the file.
"""

import argparse
import time

import jax
import numpy as np
from bench_train import CompileCounter, benchmark_config, cli_arguments, peak_memory_bytes, report
from jax.sharding import NamedSharding, PartitionSpec

from stylejax.checkpoints import load_generator
from stylejax.host_memory import keep_freed_host_memory
from stylejax.networks import build_networks
from stylejax.train.programs import make_mesh


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli_arguments(parser)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--network", help="an official network file (.pkl) to sample instead")
    args = parser.parse_args()
    keep_freed_host_memory()  # as stylejax.sample does: time what sampling gets

    compiles = CompileCounter()
    mesh = make_mesh()
    split = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())
    load_s = None
    if args.network:
        start = time.perf_counter()
        trained = load_generator(args.network)
        load_s = time.perf_counter() - start
        G, variables = trained.G, jax.device_put(trained.variables, replicated)
    else:
        G, _ = build_networks(benchmark_config(args), 0, 3)
    z = jax.device_put(jax.random.normal(jax.random.key(0), (args.batch, G.z_dim)), split)
    if not args.network:
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
        "network_file_load_s": load_s, "resolution": G.resolution,
        "config": vars(args),
        "img_per_s": args.batch / call_s, "call_s_median": call_s, "call_s_all": times,
        "compile_s": compile_s, "first_call_s": first_call_s,
        "peak_memory_bytes": peak_memory_bytes(), "recompiles_after_warmup": recompiles,
    }
    report(results, args.json)


if __name__ == "__main__":
    main()
