"""Command-line flags that make a test script one of several processes joined by jax.distributed
(collectives over gloo, as CPUs need)."""

import argparse

import jax


def add_process_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--coordinator", help="host:port of process 0; omit for one process")
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--num-processes", type=int, default=1)


def join_processes(args: argparse.Namespace) -> None:
    if args.coordinator:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
