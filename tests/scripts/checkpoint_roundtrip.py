"""Saves the tests' changed initial train state as a checkpoint, or restores one, on this
process's devices, and writes its leaves to an npz (process 0). The tests run it with 1 or 8
simulated devices, as one process or as two joined by jax.distributed (gloo on CPU)."""

import argparse

import jax
import numpy as np

from tests.checkpoint_helpers import flat_leaves, restore_state, save_init_checkpoint
from tests.scripts.processes import add_process_flags, join_processes
from tests.train_helpers import tiny_config


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--restore", action="store_true")
    add_process_flags(parser)
    args = parser.parse_args()
    join_processes(args)

    config = tiny_config()
    if args.restore:
        state = restore_state(args.workdir, config)
        for leaf in jax.tree_util.tree_leaves(state):  # replicated on every device of this mesh
            assert leaf.is_fully_replicated and len(leaf.sharding.device_set) == jax.device_count()
    else:
        state = save_init_checkpoint(args.workdir, config, step=7)
    leaves = flat_leaves(state)
    if jax.process_index() == 0:
        np.savez(args.out, devices=jax.device_count(), **leaves)


if __name__ == "__main__":
    main()
