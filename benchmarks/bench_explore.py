"""Explorer latency: milliseconds from a moved control to the PNG the page shows.

    python benchmarks/bench_explore.py --workdir runs/default      # a training run (16x16 default)
    python benchmarks/bench_explore.py                             # paper256, untrained

Serves the explorer on a free local port and times GET /image over HTTP as the page sends it,
each request with new settings (seeds, band degrees, psi), after one warm-up request that
compiles; prints the median and the slowest, the warm-up time, and the compiles after warm-up
(which must be 0).
"""

import argparse
import tempfile
import threading
import time
import urllib.request

import jax
import numpy as np
from bench_train import CompileCounter, benchmark_config, cli_arguments, report

from stylejax.checkpoints import load_generator
from stylejax.explore import Explorer, make_server
from stylejax.host_memory import keep_freed_host_memory
from stylejax.networks import build_networks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli_arguments(parser)
    parser.set_defaults(resolution=256, channel_base=16384, channel_max=512, mapping=8)
    parser.add_argument("--workdir", help="a training run to explore instead of an untrained network")
    parser.add_argument("--updates", type=int, default=20, help="timed requests")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    keep_freed_host_memory()  # as stylejax.explore does

    compiles = CompileCounter()
    if args.workdir:
        trained = load_generator(args.workdir)
        G, variables = trained.G, trained.variables
    else:
        G, _ = build_networks(benchmark_config(args), 0, 3)
        variables = jax.jit(lambda key: G.init({"params": key, "noise": key},
                                               jax.numpy.zeros((1, G.z_dim))))(jax.random.key(0))
    with tempfile.TemporaryDirectory() as out:
        server = make_server(Explorer(G, variables, out), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/image"

        def update(i: int) -> float:
            start = time.perf_counter()
            query = f"row={i}&col={i + 1}&coarse={i % 5 / 4}&middle={i % 3 / 2}&psi={1 - i % 4 / 8}"
            with urllib.request.urlopen(f"{url}?{query}", timeout=600) as reply:
                reply.read()
            return time.perf_counter() - start

        warmup_s = update(0)
        before = compiles.count
        times = [update(i) for i in range(1, args.updates + 1)]
        server.shutdown()
    report({
        "device": f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})",
        "resolution": G.resolution, "source": args.workdir or "untrained", "config": vars(args),
        "update_ms_median": 1000 * float(np.median(times)), "update_ms_max": 1000 * max(times),
        "warmup_s": warmup_s, "recompiles_after_warmup": compiles.count - before,
    }, args.json)


if __name__ == "__main__":
    main()
