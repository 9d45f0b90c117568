"""The training loop: data onto the mesh, the compiled step, logging, sample grids, checkpoints."""

import contextlib
import json
import logging
import os
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from clu import metric_writers, parameter_overview, periodic_actions
from flax import traverse_util

from stylejax.checkpoints import Checkpoints, checkpoint_dir
from stylejax.checkpoints.manager import SET_ASIDE_SUBDIR
from stylejax.data.pipeline import InputPipeline, to_global
from stylejax.errors import ConfigError, SignalStopError, TrainingDivergedError
from stylejax.files import write_atomically
from stylejax.networks import build_networks
from stylejax.official import NetworkFile, load_network_file
from stylejax.sampling import make_grid, save_png, to_uint8, z_from_seeds
from stylejax.train.evaluation import PeriodicEvaluation
from stylejax.train.programs import train_programs
from stylejax.train.progressive import lod_kwargs
from stylejax.train.state import TrainState
from stylejax.train.step import PHASE_NAMES, regularization_phases
from stylejax.train.stop import StopSignals
from stylejax.train.validate import validate_config

log = logging.getLogger(__name__)


def open_dataset(config: ml_collections.ConfigDict) -> InputPipeline:
    data = InputPipeline(config.dataset, global_batch_size=config.batch_size, seed=config.seed,
                         data_dir=config.data_dir, xflip=config.xflip,
                         max_images=config.max_images or None)
    if data.resolution != config.resolution and config.init_from:
        raise ConfigError(
            f"dataset {config.dataset!r} is {data.resolution}x{data.resolution} but the network "
            f"{config.init_from} makes {config.resolution}x{config.resolution} images; prepare the "
            f"dataset at {config.resolution} to fine-tune it")
    if data.resolution != config.resolution:
        raise ConfigError(
            f"dataset {config.dataset!r} is {data.resolution}x{data.resolution} but "
            f"config.resolution is {config.resolution}; set --config.resolution={data.resolution} "
            f"or prepare the dataset at {config.resolution}")
    if config.conditional and not data.num_classes:
        raise ConfigError(f"config.conditional is set but dataset {config.dataset!r} has no labels; "
                          "prepare it with labels or set --config.conditional=False")
    return data


class SampleGrid:
    """G_ema on fixed seeds (official z), constant noise: the same picture every time it improves."""

    def __init__(self, config, G, num_classes: int, workdir: str):
        cols, rows = config.sample_grid
        self.cols = cols
        self.z = jnp.asarray(z_from_seeds(range(cols * rows), G.z_dim))
        # Conditional grids cycle through the classes row by row.
        self.c = (jax.nn.one_hot(jnp.arange(cols * rows) // cols % num_classes, num_classes)
                  if G.c_dim else None)
        # while growing, at the step's level of detail, as the official snapshots
        self.render = jax.jit(lambda variables, z, c, step: G.apply(
            variables, z, c, noise_mode="const", **lod_kwargs(config, step)))
        self.dir = os.path.join(workdir, "samples")

    def __call__(self, state: TrainState, step: int, writer) -> str:
        images = to_uint8(jax.device_get(self.render(state.generator_variables(ema=True), self.z, self.c,
                                                     state.step)))
        grid = make_grid(images, self.cols, gap=max(1, images.shape[1] // 16))
        writer.write_images(step, {"samples": grid[None]})
        if jax.process_index() != 0:
            return ""
        os.makedirs(self.dir, exist_ok=True)
        path = os.path.join(self.dir, f"step_{step:07d}.png")
        save_png(grid, path)
        save_png(grid, os.path.join(self.dir, "latest.png"))
        return path


def mean_metrics(history: list[dict]) -> dict[str, float]:
    """Average each metric over the steps that produced it (regularisers run lazily)."""
    history = jax.device_get(history)
    keys = {k for m in history for k in m}
    return {k: float(np.mean([m[k] for m in history if k in m])) for k in sorted(keys)}


class LogWindow:
    """The steps since the last log line: their metrics, images and time, reported as scalars
    (the mean metrics, kimg, img/s, sec/kimg) and one console line with the ETA."""

    def __init__(self, config: ml_collections.ConfigDict, start: int):
        self.num_train_steps, self.batch_size = config.num_train_steps, config.batch_size
        self.history: list[dict] = []
        self.start_time, self.start_step = time.time(), start

    def add(self, metrics: dict) -> None:
        """One step's metrics (device arrays: read only when reported)."""
        self.history.append(metrics)

    def report(self, done: int, writer) -> None:
        """Writes the window ending after step `done`, and starts the next one."""
        elapsed = time.time() - self.start_time
        images = (done - self.start_step) * self.batch_size
        scalars = mean_metrics(self.history)
        scalars.update(kimg=done * self.batch_size / 1000, img_per_sec=images / elapsed,
                       sec_per_kimg=elapsed / images * 1000)
        writer.write_scalars(done, scalars)
        eta = (self.num_train_steps - done) * self.batch_size / scalars["img_per_sec"]
        log.info("step %d/%d  kimg %.1f  %.1f img/s  %.1f s/kimg  ETA %s  G %.3f  D %.3f",
                 done, self.num_train_steps, scalars["kimg"], scalars["img_per_sec"],
                 scalars["sec_per_kimg"], time.strftime("%H:%M:%S", time.gmtime(eta)),
                 scalars["g_loss"], scalars["d_loss"])
        self.history, self.start_time, self.start_step = [], time.time(), done


def check_finite(metrics: dict, limit: int, step: int) -> None:
    """Stops the run once `limit` steps in a row had a non-finite loss or gradient (a non-finite
    phase's update is never applied, so the state holds the last finite parameters)."""
    streak = int(metrics["nonfinite_streak"])
    if streak >= limit:
        phase = int(metrics["nonfinite_phase"])
        where = f"in phase {PHASE_NAMES[phase - 1]} " if phase else ""
        raise TrainingDivergedError(
            f"step {step} had a non-finite loss or gradient {where}({streak} steps in a row); "
            "its update was not applied and nothing of it is saved; lower config.optim.g_lr / "
            "d_lr, raise config.loss.r1_gamma, use float32, or resume from an earlier step "
            "(--config.restore_step)")


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """The resolved config (after overrides and the auto rule): the record, and what sampling
    rebuilds the networks from. Written once the workdir's checkpoints are known to fit it."""
    if jax.process_index() == 0:
        path = os.path.join(workdir, "config.json")
        text = json.dumps(json.loads(config.to_json_best_effort()), indent=2, sort_keys=True)
        write_atomically(path, lambda f: f.write(text.encode()))


def resume_or_init(config: ml_collections.ConfigDict, checkpoints: Checkpoints, init,
                   key: jax.Array, sizes: dict, network: NetworkFile | None) -> TrainState:
    """The latest checkpoint's state (config.restore_step's, when set: newer steps are then set
    aside), laid out like `init`'s output; else a new state, with the networks of
    config.init_from when it names a file (`network`, when already read)."""
    step = checkpoints.latest_step() if config.restore_step is None else \
        checkpoints.resolve_step(config.restore_step)
    if step is None:
        state = init(key)
        if config.init_from is None:
            return state
        network = network or network_to_tune(config.init_from, sizes)
        state = init_from_network(state, network)
        if config.augment.p_from_network and network.augment_p is not None:
            log.info("augmentation p starts at %g, the network file's", network.augment_p)
            state = state.replace(ada_p=jax.device_put(np.float32(network.augment_p), state.ada_p.sharding))
        return state
    log.info("resuming from the checkpoint of step %d in %s", step, checkpoints.directory)
    state = checkpoints.restore(jax.eval_shape(init, key), step)
    moved = checkpoints.set_aside_after(step)
    if moved:
        log.warning("moved the newer checkpoints of steps %s to %s (config.restore_step=%d); "
                    "nothing was deleted. Later reruns: drop --config.restore_step, or they go back "
                    "to step %d again", ", ".join(map(str, moved)), SET_ASIDE_SUBDIR, step, step)
    return state


def network_to_tune(path: str, sizes: dict) -> NetworkFile:
    """The official network file a run fine-tunes, checked to fit the training data."""
    network = load_network_file(path)
    arch = network.architecture
    if (arch.c_dim, arch.img_channels) != (sizes["c_dim"], sizes["img_channels"]):
        raise ConfigError(
            f"the network {path} has {arch.c_dim} classes and {arch.img_channels} image channels "
            f"but the training data {sizes['c_dim']} and {sizes['img_channels']}; prepare the "
            f"dataset with --channels {arch.img_channels}"
            + (" and labels, and set --config.conditional=True" if arch.c_dim else
               " and set --config.conditional=False"))
    network.check_trainable()
    return network


def init_from_network(state: TrainState, network: NetworkFile) -> TrainState:
    """`state` (step 0, fresh optimizers) with G, D, G_ema and w_avg of an official network
    file, laid out as `state` is (the official --resume for transfer learning)."""
    log.info("initialising G, D and G_ema from %s", network.path)

    def place(value, target):
        return jax.make_array_from_callback(target.shape, target.sharding,
                                            lambda index: np.asarray(value)[index])

    # One set of buffers (w_avg, constant noise) serves G and G_ema, as the official training
    # copies G's into G_ema at every step; in a snapshot they are equal, and G_ema's are taken
    # so that the first samples are exactly the imported network's.
    new = dict(g_params=network.G["params"], d_params=network.D["params"],
               ema_params=network.G_ema["params"], g_stats=network.G_ema["stats"],
               noise_consts=network.G_ema["noise_consts"])
    return state.replace(**{k: jax.tree_util.tree_map(place, v, getattr(state, k))
                            for k, v in new.items()})


def open_writer(config: ml_collections.ConfigDict, workdir: str, state: TrainState):
    """TensorBoard (process 0) and the console: the hparams and the networks' sizes first."""
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    hparams = traverse_util.flatten_dict(config.to_dict(), sep=".")
    writer.write_hparams({k: v if isinstance(v, int | float | str | bool) else str(v)
                          for k, v in hparams.items()})
    parameter_overview.log_parameter_overview(state.g_params, msg="Generator parameters")
    parameter_overview.log_parameter_overview(state.d_params, msg="Discriminator parameters")
    return writer


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains to config.num_train_steps steps and returns the final state.

    Rerun on the same workdir, it resumes exactly where the latest checkpoint left off. SIGTERM
    or Ctrl-C ends the current step, saves it and raises SignalStopError.
    """
    validate_config(config, jax.device_count())
    data = open_dataset(config)
    c_dim = data.num_classes if config.conditional else 0
    G, D = build_networks(config, c_dim, data.num_channels)
    programs = train_programs(config, G, D)
    sizes = {"c_dim": c_dim, "img_channels": data.num_channels}  # saved with each checkpoint
    network = None  # a fresh fine-tuning run checks the file fits before writing anything
    if config.init_from and not os.path.isdir(checkpoint_dir(workdir)):
        network = network_to_tune(config.init_from, sizes)
    with contextlib.ExitStack() as context:
        checkpoints = context.enter_context(Checkpoints(
            workdir, every_steps=config.checkpoint_every_steps, keep=config.checkpoint_keep,
            metadata=sizes))
        stop = context.enter_context(StopSignals())
        state = resume_or_init(config, checkpoints, programs.init, jax.random.key(config.seed), sizes,
                               network)
        start = int(state.step)
        # The metrics are checked before the config and the logs are written: a refused rerun
        # leaves the workdir as it was.
        evaluation = context.enter_context(
            PeriodicEvaluation(config, G, programs.mesh, workdir, start, sizes))
        write_config(config, workdir)
        writer = open_writer(config, workdir, state)
        samples = SampleGrid(config, G, data.num_classes, workdir)
        if config.init_from and start == 0 and config.sample_every_steps:
            log.info("samples of the imported network: %s", samples(state, 0, writer))
        evaluation.catch_up(state, writer)
        progress = periodic_actions.ReportProgress(num_train_steps=config.num_train_steps,
                                                   writer=writer)
        window = LogWindow(config, start)
        pending, stopped = None, None
        log.info("training steps %d to %d of %d images on %d devices (%d processes)", start,
                 config.num_train_steps, config.batch_size, jax.device_count(), jax.process_count())
        batches = context.enter_context(data.iterate(start))
        for step in range(start, config.num_train_steps):
            g_reg, d_reg = regularization_phases(config, step)
            with jax.profiler.StepTraceAnnotation("train", step_num=step):
                state, metrics = programs.step(state, to_global(next(batches), programs.batch_sharding),
                                               g_reg_phase=g_reg, d_reg_phase=d_reg)
            if pending is not None:  # the previous step's counters: no wait for this one
                check_finite(pending, config.max_nonfinite_steps, step - 1)
            pending = metrics
            window.add(metrics)
            done = step + 1
            progress(done)
            last = done == config.num_train_steps
            if done % config.log_every_steps == 0 or last:
                check_finite(pending, config.max_nonfinite_steps, step)
                window.report(done, writer)
            stopped = stop.requested()
            checkpoints.poll()  # a save that failed in the background stops the run now
            force = last or stopped is not None
            if checkpoints.due(done, force):  # a non-finite step is never saved
                check_finite(metrics, config.max_nonfinite_steps, step)
            if checkpoints.save(done, state, force=force):
                log.info("saving checkpoint %s", checkpoints.step_dir(done))
            if stopped:
                break
            if config.sample_every_steps and (done % config.sample_every_steps == 0 or last):
                path = samples(state, done, writer)
                if path:
                    log.info("samples: %s", path)
            evaluation(state, done, writer)
        writer.flush()
    reached = int(state.step)
    if stopped and reached < config.num_train_steps:
        raise SignalStopError(
            f"{signal.Signals(stopped).name}: stopped after step {reached} of {config.num_train_steps}; "
            f"saved {checkpoints.step_dir(reached)}; rerun the same command"
            f"{' without --config.restore_step' if config.restore_step is not None else ''} to "
            "resume", stopped)
    return state

