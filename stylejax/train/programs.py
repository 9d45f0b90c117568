"""The compiled programs of training, laid out on a mesh of all devices: shared by the train loop,
the benchmarks and the tests, so that they measure and test what training runs."""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from stylejax.models import Discriminator, Generator
from stylejax.train.state import create_train_state
from stylejax.train.step import TrainPhases, make_phases, run_phases

DATA_AXIS = "data"  # the mesh's one axis: batches and latents are split on it, the train state not


def make_mesh() -> Mesh:
    """All devices of all processes on DATA_AXIS.  Auto, not make_mesh's Explicit: the programs
    place their arrays with shardings and constraints, and jit lays out the rest."""
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))


@dataclasses.dataclass(frozen=True)
class TrainPrograms:
    mesh: Mesh
    replicated: NamedSharding  # the train state
    batch_sharding: NamedSharding  # batches and latents: split on DATA_AXIS
    init: Callable  # key -> TrainState
    phases: TrainPhases  # one program per phase, each donating the state
    step: Callable  # (state, batch, g_reg_phase=, d_reg_phase=) -> (state, metrics): the phases due


def phase_arguments(programs: TrainPrograms, batch: dict) -> dict[str, tuple]:
    """Each phase program's arguments after the state, every earlier phase finite: to call or
    lower one phase on its own (benchmarks, tests), where training threads them through
    run_phases."""
    ok = jax.device_put(jnp.asarray(True), programs.replicated)
    return dict(g_main=(), g_reg=(ok,), d_main=(batch, ok), d_reg=(batch, ok), finish=(ok,))


def train_programs(config: ml_collections.ConfigDict, G: Generator, D: Discriminator) -> TrainPrograms:
    mesh = make_mesh()
    replicated = NamedSharding(mesh, PartitionSpec())
    batch_sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    init = jax.jit(lambda key: create_train_state(config, G, D, key), out_shardings=replicated)
    phases = TrainPhases(*(jax.jit(phase, donate_argnums=0, out_shardings=replicated)
                           for phase in make_phases(config, G, D, batch_sharding)))
    return TrainPrograms(mesh, replicated, batch_sharding, init, phases,
                         functools.partial(run_phases, phases))
