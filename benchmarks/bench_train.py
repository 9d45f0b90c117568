"""Train-step throughput, per-phase time, compile time, FLOPs and memory of the benchmark config.

    python benchmarks/bench_train.py                      # the benchmark config (issue 8)
    python benchmarks/bench_train.py --resolution 256 --channel-base 16384 --channel-max 512 \
        --mapping 8 --batch 8 --dtype bfloat16 --json out.json

One iteration = G main + D main, plus G reg every 4th and D reg every 16th
iteration: a window of 16 iterations holds each program in its real
proportion, so images/s over windows is the amortised training speed. Numbers
are medians over windows after a warm-up; the matmul peak is measured in the
same run, so the ratio holds on a noisy shared machine.
"""

import argparse
import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from stylejax.configs import base_config
from stylejax.train.programs import train_programs
from stylejax.train.state import build_networks
from stylejax.train.step import regularization_phases

PHASES = {(False, False): "G main + D main", (True, False): "+ G reg", (True, True): "+ G reg + D reg",
          (False, True): "+ D reg"}


def benchmark_config(args):
    config = base_config()
    config.resolution = args.resolution
    config.batch_size = args.batch
    config.model.update(channel_base=args.channel_base, channel_max=args.channel_max,
                        mapping_layers=args.mapping, z_dim=512, w_dim=512, dtype=args.dtype,
                        modconv=args.modconv, mbstd_group_size=4)
    config.loss.update(r1_gamma=0.01, d_reg_interval=16, g_reg_interval=4, pl_weight=2.0,
                       pl_batch_shrink=2, style_mixing_prob=0.9)
    return config


class CompileCounter:
    """Counts XLA backend compiles through jax.monitoring, to prove nothing recompiles."""

    def __init__(self):
        self.durations: list[float] = []
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    @property
    def count(self) -> int:
        return len(self.durations)

    def _on_event(self, event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            self.durations.append(duration)


def matmul_peak_flops(n: int, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matmul through XLA on the same devices."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    jax.block_until_ready(matmul(a))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(matmul(a))
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / float(np.median(times))


def peak_memory_bytes() -> int:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # host RSS on CPU


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    """The network and batch flags, shared with profile_train.py so both measure one config."""
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--channel-base", type=int, default=4096)
    parser.add_argument("--channel-max", type=int, default=128)
    parser.add_argument("--mapping", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--modconv", choices=("shared", "fused"), default="shared")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli_arguments(parser)
    parser.add_argument("--windows", type=int, default=5, help="timed windows of 16 iterations")
    parser.add_argument("--matmul", type=int, default=0, help="matmul size for the peak (0: by backend)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    compiles = CompileCounter()
    config = benchmark_config(args)
    G, D = build_networks(config, 0, 3)
    programs = train_programs(config, G, D)
    batch_sharding, step = programs.batch_sharding, programs.step
    state = programs.init(jax.random.key(0))
    images = jax.device_put(jax.random.uniform(jax.random.key(1), (args.batch, args.resolution,
                                                                   args.resolution, 3), minval=-1),
                            batch_sharding)
    batch = {"image": images, "label": jax.device_put(jnp.zeros((args.batch, 0)), batch_sharding)}

    schedule = [regularization_phases(config, s) for s in range(16)]
    compile_s, compile_cpu_s, flops, phase_s = {}, {}, {}, {}
    for phases in dict.fromkeys(schedule):  # first use compiles: time it, then time the program
        kwargs = dict(g_reg_phase=phases[0], d_reg_phase=phases[1])
        lowered = step.lower(state, batch, **kwargs)
        durations_before = len(compiles.durations)
        cpu_before = time.process_time()
        compiled = lowered.compile()  # fills the jit cache: the first call below runs without compiling
        compile_cpu_s[phases] = time.process_time() - cpu_before
        compile_s[phases] = sum(compiles.durations[durations_before:])
        cost = lowered.cost_analysis() or compiled.cost_analysis()  # GPU (jax 0.11): compiled only
        flops[phases] = float((cost[0] if isinstance(cost, list) else cost).get("flops", 0.0))
        state, metrics = step(state, batch, **kwargs)
        jax.block_until_ready(metrics)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            state, metrics = step(state, batch, **kwargs)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - start)
        phase_s[phases] = float(np.median(times))

    compiles_before = compiles.count
    window_s = []
    for _ in range(args.windows):
        start = time.perf_counter()
        for phases in schedule:
            state, metrics = step(state, batch, g_reg_phase=phases[0], d_reg_phase=phases[1])
        jax.block_until_ready(metrics)
        window_s.append(time.perf_counter() - start)
    recompiles = compiles.count - compiles_before

    window = float(np.median(window_s))
    img_per_s = 16 * args.batch / window
    flops_per_image = sum(flops[p] for p in schedule) / (16 * args.batch)
    achieved = flops_per_image * img_per_s
    backend = jax.default_backend()
    n = args.matmul or (2048 if backend == "cpu" else 8192)
    peak = matmul_peak_flops(n) * jax.device_count()
    results = {
        "device": f"{jax.device_count()} x {jax.devices()[0].device_kind} ({backend})",
        "config": vars(args),
        "img_per_s": img_per_s, "sec_per_kimg": 1000 / img_per_s,
        "window_s_median": window, "window_s_all": window_s,
        "phase_s": {PHASES[p]: v for p, v in phase_s.items()},
        "compile_s": {PHASES[p]: v for p, v in compile_s.items()},
        "compile_s_total": sum(compile_s.values()),
        # CPU seconds of the compiles: on a shared machine, steadier than their wall time
        "compile_cpu_s": {PHASES[p]: v for p, v in compile_cpu_s.items()},
        "compile_cpu_s_total": sum(compile_cpu_s.values()),
        "flops_per_image": flops_per_image, "achieved_flops_per_s": achieved,
        "matmul_peak_flops_per_s": peak, "ratio_to_peak": achieved / peak,
        "peak_memory_bytes": peak_memory_bytes(), "recompiles_after_warmup": recompiles,
    }
    report(results, args.json)


def report(results: dict, json_path: str | None) -> None:
    """Prints the results (and writes them as JSON); any recompile after warm-up fails the run."""
    print(json.dumps(results, indent=2))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=2)
    if results["recompiles_after_warmup"]:
        raise SystemExit(f"error: {results['recompiles_after_warmup']} recompiles after warm-up")


if __name__ == "__main__":
    main()
