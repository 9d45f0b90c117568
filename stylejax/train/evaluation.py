"""Quality metrics during training: every eval_every_steps and at the end, to TensorBoard, the
console and WORKDIR/metrics.jsonl; each evaluation that beats the best so far (by the first
metric) is saved as the run's best checkpoint."""

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from stylejax.checkpoints import BestCheckpoint, chosen_metric
from stylejax.files import write_atomically
from stylejax.metrics.evaluator import Evaluator
from stylejax.models import Generator
from stylejax.train.state import TrainState

log = logging.getLogger(__name__)


def forget_after(path: str, step: int) -> set[int]:
    """Keeps in the metrics file only the lines of steps up to `step`, once each, and returns
    those steps. A run resumed from `step` evaluates the later steps again, and a killed write
    may have left a partial line. Rewritten atomically, and only when something changes."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return set()
    lines = {}
    for line in text.splitlines():
        try:
            line_step = int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):  # cut short by a killed write
            continue
        if line_step <= step:
            lines[line_step] = line  # the newest evaluation of a step written twice
    kept = "".join(lines[s] + "\n" for s in sorted(lines))
    if kept != text:
        log.info("%s: keeping the evaluations of steps up to %d, where training resumes", path, step)
        write_atomically(path, lambda f: f.write(kept.encode()))
    return set(lines)


class PeriodicEvaluation:
    """Every process calls it (the metrics and the best checkpoint's saves are collectives);
    process 0 writes the file. Made when training starts at step `start`, which it takes as
    the end of what metrics.jsonl holds. A context manager: leaving it waits for a best
    checkpoint's save in flight."""

    def __init__(self, config: ml_collections.ConfigDict, G: Generator, mesh: Mesh, workdir: str,
                 start: int, metadata: Mapping[str, Any]):
        self.every = config.eval_every_steps
        self.last_step = config.num_train_steps
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.evaluator = self.best = None
        if config.metrics:  # first: a bad metric setting is refused before anything is written
            self.evaluator = Evaluator(config, G, mesh, data_dir=config.data_dir)
            self.best = BestCheckpoint(workdir, chosen_metric(config), metadata)
        self.recorded = forget_after(self.path, start) if jax.process_index() == 0 else set()

    def __enter__(self) -> "PeriodicEvaluation":
        return self

    def __exit__(self, *exc) -> None:
        if self.best is not None:
            self.best.__exit__(*exc)

    def due(self, step: int) -> bool:
        return self.evaluator is not None and (
            step == self.last_step or bool(self.every and step % self.every == 0))

    def catch_up(self, state: TrainState, writer) -> None:
        """Evaluates the step training resumes from if it was due and its evaluation was never
        written (the run stopped or died after that step's checkpoint was saved)."""
        step = int(state.step)
        missing = self.due(step) and step > 0 and step not in self.recorded
        if multihost_utils.broadcast_one_to_all(np.bool_(missing)):  # process 0 read the file
            self(state, step, writer)

    def __call__(self, state: TrainState, step: int, writer) -> dict[str, float]:
        """The metrics of `step` when it is due (else {}), and the best checkpoint kept."""
        if not self.due(step):
            return {}
        results = self.evaluator(state.generator_variables(ema=True), step)
        writer.write_scalars(step, {f"metrics/{k}": v for k, v in results.items()})
        if self.best.offer(step, state, results):
            log.info("step %d is the best so far (%s %.4g): saving %s", step, self.best.metric,
                     self.best.value, self.best.checkpoints.step_dir(step))
        if jax.process_index() == 0:  # last: a line means the step's evaluation is done
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, **results}) + "\n")
        return results
