"""Runs one full training iteration (G main, G reg, D main, D reg, with ADA) and saves the
parameters and p.

Run as a subprocess by the tests, with XLA_FLAGS setting the simulated device
count, optionally as one of several processes joined by jax.distributed.
"""

import argparse
import re

import jax
import numpy as np

from stylejax.data.pipeline import to_global
from stylejax.networks import build_networks
from stylejax.train.programs import phase_arguments, train_programs
from tests.scripts.processes import add_process_flags, join_processes
from tests.train_helpers import random_batch, tiny_config


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--device-batch", type=int, help="config.device_batch: rounds per phase")
    parser.add_argument("--no-noise", action="store_true", help="config.model.use_noise = False")
    add_process_flags(parser)
    args = parser.parse_args()
    join_processes(args)

    config = tiny_config()
    config.device_batch = args.device_batch
    config.model.use_noise = not args.no_noise
    # ADA draws each image's augmentation from the step's key and adapts p after the step on
    # the real logits' signs of the whole batch (the blit pipe: cheap to compile).
    config.augment.update(mode="ada", pipe="blit", p=0.5, interval=1, kimg=1)
    G, D = build_networks(config, 0, 3)
    programs = train_programs(config, G, D)
    batch_sharding = programs.batch_sharding
    state = programs.init(jax.random.key(0))
    # Each process feeds only its own rows of the global batch.
    rows = config.batch_size // jax.process_count()
    local = {k: v[jax.process_index() * rows:(jax.process_index() + 1) * rows]
             for k, v in random_batch(config).items()}
    batch = to_global(local, batch_sharding)
    collectives = collectives_in_phases(programs, state, batch)
    state, metrics = programs.step(state, batch, g_reg_phase=True, d_reg_phase=True)
    leaves = jax.tree_util.tree_leaves_with_path(
        {"g": state.g_params, "d": state.d_params, "ema": state.ema_params, "stats": state.g_stats,
         "g_opt": state.g_opt_state, "d_opt": state.d_opt_state, "pl_mean": state.pl_mean,
         "ada_p": state.ada_p,
         "metrics": metrics})
    flat = {jax.tree_util.keystr(p): np.asarray(jax.device_get(v)) for p, v in leaves}
    if jax.process_index() == 0:
        np.savez(args.out, devices=jax.device_count(), collectives=collectives, **flat)


def collectives_in_phases(programs, state, batch) -> list[str]:
    """The kinds of cross-device operation in the compiled phases (the persistent cache the
    tests set up serves the step's own compiles afterwards)."""
    found = set()
    for name, args in phase_arguments(programs, batch).items():
        text = getattr(programs.phases, name).lower(state, *args).compile().as_text()
        found |= set(re.findall(r"\b(all-reduce|all-gather|all-to-all|collective-permute|"
                                r"reduce-scatter|collective-broadcast)(?:-start)?\(", text))
    return sorted(found)


if __name__ == "__main__":
    main()
