"""Quality metrics during training: every eval_every_steps and at the end, to TensorBoard,
the console and WORKDIR/metrics.jsonl."""

import json
import os

import jax
import ml_collections
from jax.sharding import Mesh

from stylejax.metrics.evaluator import Evaluator
from stylejax.models import Generator
from stylejax.train.state import TrainState


class PeriodicEvaluation:
    """Every process calls it (the metrics are collectives); process 0 writes the file."""

    def __init__(self, config: ml_collections.ConfigDict, G: Generator, mesh: Mesh, workdir: str):
        self.every = config.eval_every_steps
        self.evaluator = Evaluator(config, G, mesh, data_dir=config.data_dir) if config.metrics else None
        self.path = os.path.join(workdir, "metrics.jsonl")

    def __call__(self, state: TrainState, step: int, writer, last: bool) -> dict[str, float]:
        due = last or (self.every and step % self.every == 0)
        if self.evaluator is None or not due:
            return {}
        results = self.evaluator(state.generator_variables(ema=True), step)
        writer.write_scalars(step, {f"metrics/{k}": v for k, v in results.items()})
        if jax.process_index() == 0:
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, **results}) + "\n")
        return results
