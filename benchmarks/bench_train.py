"""Train-step throughput, per-phase time, compile time, FLOPs and memory of the benchmark config.

    python benchmarks/bench_train.py                      # the benchmark config (issue 8)
    python benchmarks/bench_train.py --device-batch 4     # the same, in rounds of 4 (config.device_batch)
    python benchmarks/bench_train.py --resolution 256 --channel-base 16384 --channel-max 512 \
        --mapping 8 --batch 8 --dtype bfloat16 --json out.json
    python benchmarks/bench_train.py --resolution 256 --channel-base 16384 --channel-max 512 \
        --mapping 8 --batch 8 --compile-only      # compile time at 256 on a CPU
    python benchmarks/bench_train.py --config experiments/default.py --compare-impl
                                                  # model.impl reference against tuned, one process
    python benchmarks/bench_train.py --augment    # the step without and with augmentation (bgc)
    python benchmarks/bench_train.py --compare-generation  # StyleGAN2 against StyleGAN (2018)

One iteration = G main + D main, plus G reg every 4th and D reg every 16th
iteration, each phase its own compiled program: a window of 16 iterations holds
each phase in its real proportion, so images/s over windows is the amortised
training speed. Numbers are medians over windows after a warm-up; the matmul
peak is measured after every window and each window is compared with its own
peak, so the ratio holds on a noisy shared machine whose speed drifts.
With --compare-impl, the reference and the tuned convolution (config.model.impl) train in
one process, their windows interleaved, and each pair of neighbouring windows gives a ratio;
with --augment, the same for the step without and with augmentation (ADA, issue 25); with
--compare-generation, for StyleGAN2's networks and StyleGAN's on the same config (issue 26).
"""

import argparse
import importlib.util
import json
import resource
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from stylejax.configs import base_config
from stylejax.host_memory import keep_freed_host_memory
from stylejax.networks import MODEL_IMPLS, build_networks
from stylejax.train.programs import TrainPrograms, phase_arguments, train_programs
from stylejax.train.step import regularization_phases


def benchmark_config(args):
    config = base_config()
    config.resolution = args.resolution
    config.batch_size = args.batch
    config.device_batch = args.device_batch
    config.model.update(channel_base=args.channel_base, channel_max=args.channel_max,
                        mapping_layers=args.mapping, z_dim=512, w_dim=512, dtype=args.dtype,
                        modconv=args.modconv, mbstd_group_size=4, impl=args.impl)
    config.loss.update(r1_gamma=0.01, d_reg_interval=16, g_reg_interval=4, pl_weight=2.0,
                       pl_batch_shrink=2, style_mixing_prob=0.9)
    return config


def train_config(args) -> ml_collections.ConfigDict:
    """The experiment file's config (--config) with --impl, or else the benchmark config."""
    if args.config is None:
        return benchmark_config(args)
    spec = importlib.util.spec_from_file_location("experiment", args.config)
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    config = experiment.get_config()
    config.model.impl = args.impl
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


@jax.jit
def _square(x):
    return x @ x


def matmul_peak_flops(n: int, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matmul through XLA on the same devices."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    jax.block_until_ready(_square(a))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(_square(a))
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / float(np.median(times))


def model_flops(lowered: jax.stages.Lowered) -> float:
    """XLA's cost analysis of the program as lowered, before the backend rewrites it: the model's
    FLOPs on any backend. GPU backends (PJRT plugins) do not analyse a lowered program, and their
    compiled analysis leaves out the convolutions they hand to cuDNN (it read 89 MFLOP per image
    for 7.6 GFLOP on the H200), so there the lowered program goes to the CPU backend's analysis,
    which every jax install has (a private jax function: this is a benchmark, not the library)."""
    cost = lowered.cost_analysis()
    if cost is None:
        from jax._src import xla_bridge
        from jax._src.lib import _jax
        module = lowered._lowering.hlo().as_hlo_module()
        cost = _jax.hlo_module_cost_analysis(xla_bridge.get_backend("cpu"), module)
    return float((cost[0] if isinstance(cost, list) else cost).get("flops", 0.0))


def peak_memory_bytes() -> int:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # host RSS on CPU


def phase_runner(programs, batch):
    """name, state -> (state, outputs) for each phase program, and its arguments after the state."""
    arguments = phase_arguments(programs, batch)

    def run(name, state):
        out = getattr(programs.phases, name)(state, *arguments[name])
        return out[0], out[1:]
    return run, arguments


def phases_due(config, step: int) -> list[str]:
    g_reg, d_reg = regularization_phases(config, step)
    return ["g_main"] + ["g_reg"] * g_reg + ["d_main"] + ["d_reg"] * d_reg + ["finish"]


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    """The network and batch flags, shared with profile_train.py so both measure one config."""
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--channel-base", type=int, default=4096)
    parser.add_argument("--channel-max", type=int, default=128)
    parser.add_argument("--mapping", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device-batch", type=int, default=None,
                        help="images per device in one round (config.device_batch); "
                             "default: the whole share in one round")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--modconv", choices=("shared", "fused"), default="shared")
    parser.add_argument("--impl", choices=MODEL_IMPLS, default="auto",
                        help="config.model.impl: the networks' stride-1 convolution")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli_arguments(parser)
    parser.add_argument("--windows", type=int, default=5, help="timed windows of 16 iterations")
    parser.add_argument("--matmul", type=int, default=0, help="matmul size for the peak (0: by backend)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--config", help="an experiment file (experiments/*.py) to time instead of "
                                         "the benchmark config; the network and batch flags are ignored")
    parser.add_argument("--compile-only", action="store_true",
                        help="compile every phase and report compile times and FLOPs, no timing "
                             "(large resolutions on a CPU, where one step takes minutes)")
    parser.add_argument("--compare-impl", action="store_true",
                        help="img/s of model.impl 'reference' and 'tuned' in interleaved windows, "
                             "and their ratio (--impl is ignored)")
    parser.add_argument("--augment", action="store_true",
                        help="img/s without and with augmentation (config.augment.pipe, fixed "
                             "--augment-p) in interleaved windows, and their ratio")
    parser.add_argument("--augment-p", type=float, default=0.5)
    parser.add_argument("--compare-generation", action="store_true",
                        help="img/s of model.generation 'stylegan2' and 'stylegan1' in interleaved "
                             "windows, and their ratio")
    args = parser.parse_args()
    keep_freed_host_memory()  # as stylejax.main does: time what a training run gets

    compiles = CompileCounter()
    config = train_config(args)
    if args.compare_impl:
        report(compare_impls(config, args.windows, compiles), args.json)
        return
    if args.augment:
        report(compare_augment(config, args.augment_p, args.windows, compiles), args.json)
        return
    if args.compare_generation:
        report(compare_generations(config, args.windows, compiles), args.json)
        return
    G, D = build_networks(config, 0, 3)
    programs = train_programs(config, G, D)
    state = programs.init(jax.random.key(0))
    batch = random_batch(config, programs)

    run, arguments = phase_runner(programs, batch)
    schedule = [phase for s in range(16) for phase in phases_due(config, s)]
    compile_s, compile_cpu_s, flops, phase_s = {}, {}, {}, {}
    for name in dict.fromkeys(schedule):  # compile each phase (timed), then time its program
        program = getattr(programs.phases, name)
        lowered = program.lower(state, *arguments[name])
        durations_before = len(compiles.durations)
        cpu_before = time.process_time()
        lowered.compile()  # fills the jit cache: the calls below run without compiling
        compile_cpu_s[name] = time.process_time() - cpu_before
        compile_s[name] = sum(compiles.durations[durations_before:])
        flops[name] = model_flops(lowered)
        # as it happens: a run stopped by a time limit still shows how far compiling got
        print(f"compiled {name} in {compile_s[name]:.1f} s", file=sys.stderr, flush=True)
        if args.compile_only:
            continue
        state, outputs = run(name, state)
        jax.block_until_ready(outputs)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            state, outputs = run(name, state)
            jax.block_until_ready(outputs)
            times.append(time.perf_counter() - start)
        phase_s[name] = float(np.median(times))

    flops_per_image = sum(flops[name] for name in schedule) / (16 * config.batch_size)
    backend = jax.default_backend()
    results = {
        "device": f"{jax.device_count()} x {jax.devices()[0].device_kind} ({backend})",
        "config": vars(args),
        "compile_s": compile_s,
        "compile_s_total": sum(compile_s.values()),
        # CPU seconds of the compiles: on a shared machine, steadier than their wall time
        "compile_cpu_s": compile_cpu_s,
        "compile_cpu_s_total": sum(compile_cpu_s.values()),
        "flops_per_image": flops_per_image,
        "flops_per_phase": flops,
    }
    if not args.compile_only:
        matmul = args.matmul or (2048 if backend == "cpu" else 8192)
        # Host 'devices' share the machine's cores: one matmul already uses them all.
        devices = 1 if backend == "cpu" else jax.device_count()
        results.update(time_windows(config, programs.step, state, batch, args.windows, compiles,
                                    peak=lambda: matmul_peak_flops(matmul) * devices))
        results["phase_s"] = phase_s
        ratios = [flops_per_image * 16 * config.batch_size / (window * peak)
                  for window, peak in zip(results["window_s_all"], results["matmul_peak_all"],
                                              strict=True)]
        results.update(achieved_flops_per_s=flops_per_image * results["img_per_s"],
                       matmul_peak_flops_per_s=float(np.median(results["matmul_peak_all"])),
                       ratio_to_peak=float(np.median(ratios)), ratio_to_peak_all=ratios)
    results["peak_memory_bytes"] = peak_memory_bytes()
    report(results, args.json)


def random_batch(config: ml_collections.ConfigDict, programs: TrainPrograms) -> dict:
    """A batch of uniform noise images (3 channels, no labels), split over the devices."""
    shape = (config.batch_size, config.resolution, config.resolution, 3)
    images = jax.random.uniform(jax.random.key(1), shape, minval=-1)
    return jax.device_put({"image": images, "label": jnp.zeros((config.batch_size, 0))},
                          programs.batch_sharding)


def run_window(config, step, state, batch):
    """16 iterations, each phase in its proportion; returns the state and the last metrics."""
    for step_index in range(16):
        state, metrics = step(state, batch, *regularization_phases(config, step_index))
    return state, metrics


def compare_variants(variants: dict[str, ml_collections.ConfigDict], windows: int,
                     compiles: CompileCounter) -> dict:
    """img/s of two configs in one process, windows interleaved (first, second, second, first,
    ...): the machine's speed drifts, so the ratio of each window pair (the first's seconds over
    the second's) is the measure, and the result is its median."""
    runs = {}
    for name, variant in variants.items():
        programs = train_programs(variant, *build_networks(variant, 0, 3))
        batch = random_batch(variant, programs)
        state, metrics = run_window(variant, programs.step, programs.init(jax.random.key(0)), batch)
        jax.block_until_ready(metrics)  # the warm-up window compiles every phase
        runs[name] = [variant, programs.step, state, batch]
    compiles_before = compiles.count
    names = list(variants)
    seconds = {name: [] for name in names}
    for window in range(windows):
        for name in names[::1 if window % 2 == 0 else -1]:
            variant, step, state, batch = runs[name]
            start = time.perf_counter()
            state, metrics = run_window(variant, step, state, batch)
            jax.block_until_ready(metrics)
            seconds[name].append(time.perf_counter() - start)
            runs[name][2] = state
    ratios = [a / b for a, b in zip(seconds[names[0]], seconds[names[1]], strict=True)]
    batch_size = variants[names[0]].batch_size
    return {"device": f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})",
            "img_per_s": {name: 16 * batch_size / float(np.median(s)) for name, s in seconds.items()},
            "window_s_all": seconds, "ratio": float(np.median(ratios)), "ratio_all": ratios,
            "recompiles_after_warmup": compiles.count - compiles_before}


def compare_impls(config: ml_collections.ConfigDict, windows: int, compiles: CompileCounter) -> dict:
    """The reference and the tuned convolution (model.impl); ratio: the tuned one's speed-up."""
    variants = {}
    for impl in ("reference", "tuned"):
        variants[impl] = config.copy_and_resolve_references()
        variants[impl].model.impl = impl
    return compare_variants(variants, windows, compiles)


def compare_generations(config: ml_collections.ConfigDict, windows: int,
                        compiles: CompileCounter) -> dict:
    """StyleGAN2's networks and StyleGAN (2018)'s on one config; ratio: StyleGAN's speed over
    StyleGAN2's."""
    variants = {}
    for generation in ("stylegan2", "stylegan1"):
        variants[generation] = config.copy_and_resolve_references()
        variants[generation].model.generation = generation
    return compare_variants(variants, windows, compiles)


def compare_augment(config: ml_collections.ConfigDict, p: float, windows: int,
                    compiles: CompileCounter) -> dict:
    """The step without and with augmentation (config.augment.pipe at a fixed p); ratio: the
    plain step's seconds over the augmented one's, so 1 / ratio - 1 is augmentation's cost."""
    augmented = config.copy_and_resolve_references()
    augmented.augment.update(mode="fixed", p=p)
    results = compare_variants({"plain": config, "augmented": augmented}, windows, compiles)
    results["augment_cost"] = 1 / results["ratio"] - 1
    return results


def time_windows(config, step, state, batch, windows: int, compiles: CompileCounter,
                 peak: Callable[[], float]) -> dict:
    """Amortised speed over windows of 16 iterations, the compiles they caused (none, after each
    phase compiled once), and the matmul peak measured right after each window: the machine's
    speed drifts during a run, so each window is compared with its own peak."""
    peak()  # compiles the matmul before the count starts
    # one iteration through the step, all phases due: compiles its own small host-side programs
    state, metrics = step(state, batch, *regularization_phases(config, 0))
    jax.block_until_ready(metrics)
    compiles_before = compiles.count
    window_s, peaks, faults = [], [], 0
    for _ in range(windows):
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        state, metrics = run_window(config, step, state, batch)
        jax.block_until_ready(metrics)
        window_s.append(time.perf_counter() - start)
        # host pages faulted in by the iterations (not the peak's matmul): buffers that malloc
        # handed back to the kernel
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
        peaks.append(peak())
    window = float(np.median(window_s))
    img_per_s = 16 * config.batch_size / window
    return {"img_per_s": img_per_s, "sec_per_kimg": 1000 / img_per_s, "window_s_median": window,
            "window_s_all": window_s, "matmul_peak_all": peaks,
            "page_faults_per_iteration": faults / (16 * windows),
            "recompiles_after_warmup": compiles.count - compiles_before}


def report(results: dict, json_path: str | None) -> None:
    """Prints the results (and writes them as JSON); any recompile after warm-up fails the run."""
    print(json.dumps(results, indent=2))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=2)
    if results.get("recompiles_after_warmup"):
        raise SystemExit(f"error: {results['recompiles_after_warmup']} recompiles after warm-up")


if __name__ == "__main__":
    main()
