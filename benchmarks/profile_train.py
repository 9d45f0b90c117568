"""Where the train step's time goes: per phase, per kind of XLA op, and the costliest ops.

    python benchmarks/profile_train.py                    # the benchmark config of bench_train.py
    python benchmarks/profile_train.py --modconv fused --top 25

Traces each phase's compiled program (g_main, g_reg, d_main, d_reg, finish)
with jax.profiler and attributes every executed XLA op to the train-step phase
that emitted it (the named scopes g_main / g_reg / d_main / d_reg / ema in
stylejax/train/step.py; ops XLA made without a name, such as most weight-gradient
convolutions, land in 'other'), to its kind (convolution, matmul, fused elementwise,
...) and to its direction (forward, backward, double backward: the number of
transposes in its op_name).  Times are wall time of the op on the XLA
threads; ops on the two cores can overlap, so they sum to about the step time.
"""

import argparse
import collections
import glob
import re
import tempfile
import time

import jax
import numpy as np
from bench_train import benchmark_config, cli_arguments, phase_runner
from jax.profiler import ProfileData

from stylejax.host_memory import keep_freed_host_memory
from stylejax.networks import build_networks
from stylejax.train.programs import train_programs
from stylejax.train.step import TrainPhases

STEP_PHASES = ("g_main", "g_reg", "d_main", "d_reg", "ema")
# Runtime events that enclose or wait for the ops rather than being one.
WRAPPERS = ("ThreadpoolListener", "end: ", "ThunkExecutor", "SlinkyThreadPool")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*?)\s+([\w\-]+)\((.*)$")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_SUFFIX = re.compile(r"[.]\d+$")
_CALLS = re.compile(r"(?:calls|to_apply)=%?([\w.\-]+)")


def hlo_ops(hlo_text: str) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """The optimised HLO module as {instruction name: op} and {computation: [ops]}."""
    ops, computations, computation = {}, collections.defaultdict(list), None
    for line in hlo_text.splitlines():
        header = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
        if header:
            computation = header.group(1)
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        name, shape, opcode, rest = m.groups()
        op_name = _OP_NAME.search(rest)
        calls = _CALLS.search(rest)
        op = dict(opcode=opcode, shape=shape, op_name=op_name.group(1) if op_name else "",
                  calls=calls.group(1) if calls else None, text=line.strip())
        ops[name] = op
        computations[computation].append(op)
    return ops, computations


HEAVY = ("convolution", "dot", "reduce-window", "scatter", "gather", "reduce")


def describe(ops: dict, computations: dict, name: str) -> tuple[str, str]:
    """(kind, op_name) of an executed op; a fusion is named by its heaviest instruction."""
    op = ops[name]
    body = computations.get(op["calls"], []) if op["calls"] else []
    for heavy in HEAVY:
        inner = [o for o in body if o["opcode"] == heavy]
        if inner:
            return f"{op['opcode']}({heavy})", inner[0]["op_name"] or op["op_name"]
    if body:
        named = [o["op_name"] for o in body if o["op_name"]]
        return f"{op['opcode']}(elementwise)", op["op_name"] or (named[-1] if named else "")
    return op["opcode"], op["op_name"]


def classify(ops: dict, computations: dict, event: str) -> tuple[str, str, str]:
    """(phase, kind, direction) of an executed op, from its HLO metadata."""
    if event not in ops:
        return "?", "runtime:" + _SUFFIX.sub("", event), "-"
    kind, op_name = describe(ops, computations, event)
    phase = next((p for p in STEP_PHASES if f"/{p}/" in f"/{op_name}/"), "other")
    depth = op_name.count("transpose(")
    direction = ("forward", "backward", "double backward")[min(depth, 2)]
    return phase, kind, direction


def xla_events(trace_dir: str) -> list[tuple[str, float]]:
    """(op name, seconds) of every op the XLA CPU runtime executed in the trace."""
    path = sorted(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True))[-1]
    events = []
    for plane in ProfileData.from_file(path).planes:
        for line in plane.lines:
            if "XLA" not in line.name:
                continue
            for event in line.events:
                if event.name.startswith(WRAPPERS):
                    continue
                events.append((event.name, event.duration_ns * 1e-9))
    return events


def profile_phase(programs, run, arguments, name: str, state, runs: int):
    """Compiles one phase program, runs it once, then traces `runs` more calls."""
    text = getattr(programs.phases, name).lower(state, *arguments[name]).compile().as_text()
    ops = hlo_ops(text)
    state, outputs = run(name, state)
    jax.block_until_ready(outputs)
    with tempfile.TemporaryDirectory(prefix="sj_perf_trace_") as trace_dir:
        jax.profiler.start_trace(trace_dir)
        start = time.perf_counter()
        for _ in range(runs):
            state, outputs = run(name, state)
            jax.block_until_ready(outputs)
        wall = (time.perf_counter() - start) / runs
        jax.profiler.stop_trace()
        events = xla_events(trace_dir)
    return state, wall, ops, events


def report(title: str, wall: float, hlo: tuple, events: list, runs: int, top: int) -> None:
    ops, computations = hlo
    by = {k: collections.Counter() for k in ("phase", "kind", "direction", "phase/kind/dir", "op")}
    for name, seconds in events:
        phase, kind, direction = classify(ops, computations, name)
        s = seconds / runs
        by["phase"][phase] += s
        by["kind"][kind] += s
        by["direction"][direction] += s
        by["phase/kind/dir"][f"{phase:7s} {kind:28s} {direction}"] += s
        by["op"][name] += s
    total = sum(by["phase"].values())
    print(f"\n=== {title}: {wall * 1e3:.0f} ms per call (wall), {total * 1e3:.0f} ms summed over ops")
    for key in ("phase", "direction", "kind"):
        print(f"  by {key}: " + ", ".join(f"{k} {v * 1e3:.0f} ms ({v / total:.0%})"
                                          for k, v in by[key].most_common()))
    print("  by phase / kind / direction:")
    for k, v in by["phase/kind/dir"].most_common(top):
        print(f"    {v * 1e3:8.1f} ms {v / total:5.1%}  {k}")
    print(f"  top {top} ops:")
    for name, v in by["op"].most_common(top):
        op = ops.get(name, {})
        kind, op_name = describe(ops, computations, name) if op else ("", "")
        print(f"    {v * 1e3:8.1f} ms {v / total:5.1%}  {name:22s} {kind:22s} "
              f"{op.get('shape', '')[:44]:44s} {op_name[-100:]}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli_arguments(parser)
    parser.add_argument("--runs", type=int, default=3, help="traced calls per phase program")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    keep_freed_host_memory()  # as stylejax.main does

    config = benchmark_config(args)
    G, D = build_networks(config, 0, 3)
    programs = train_programs(config, G, D)
    state = programs.init(jax.random.key(0))
    images = jax.random.uniform(jax.random.key(1), (args.batch, args.resolution, args.resolution, 3),
                                minval=-1)
    batch = jax.device_put({"image": images, "label": np.zeros((args.batch, 0), np.float32)},
                           programs.batch_sharding)
    run, arguments = phase_runner(programs, batch)
    for name in TrainPhases._fields:
        state, wall, ops, events = profile_phase(programs, run, arguments, name, state, args.runs)
        report(name, wall, ops, events, args.runs, args.top)


if __name__ == "__main__":
    main()
