"""The run's best checkpoint by its chosen metric, kept apart from the newest `checkpoint_keep`.

Why a second orbax manager (WORKDIR/checkpoints_best) rather than orbax's best_fn on the first:
with best_fn, the first manager would keep the best N steps instead of the newest N, which
resuming needs; and orbax takes a step's metrics when the step is saved, while training
evaluates after the save (so that a crash in a long evaluation costs no checkpoint) and at
steps that need not be checkpoint steps. So each evaluation that beats the best so far saves
the state again, with its metrics, into the second manager, whose BestN policy keeps the one
step with the lowest metric: by value, not by step, since after a resume from before the kept
step a better evaluation may come at a lower step. The metrics are committed with the arrays,
so a resumed run starts from the best it had. The whole train state is saved, so training can
also go on from the best step.
"""

import logging
import math
from collections.abc import Mapping
from typing import Any

import ml_collections

from stylejax.checkpoints.manager import Checkpoints
from stylejax.errors import CheckpointError

log = logging.getLogger(__name__)


def chosen_metric(config: ml_collections.ConfigDict) -> str | None:
    """The metric the best checkpoint is chosen by: the first of config.metrics (lower is
    better: every metric is a distance). None when the config evaluates nothing."""
    from stylejax.metrics.errors import MetricsError  # not at import: sampling needs none of it
    from stylejax.metrics.extractors import HIGHER_IS_BETTER, parse_metrics

    names = parse_metrics(config.metrics)
    if names and names[0] in HIGHER_IS_BETTER:
        raise MetricsError(f"config.metrics starts with {names[0]}, but the first metric picks the "
                           f"best checkpoint by the lowest value; list a distance first, e.g. "
                           f"--config.metrics=fid,{','.join(names)}")
    return names[0] if names else None


def best_metric(config: ml_collections.ConfigDict, workdir: str) -> str:
    """chosen_metric of a run's config, for reading its best checkpoint."""
    metric = chosen_metric(config)
    if metric is None:
        raise CheckpointError(f"the run in {workdir} evaluates no metrics (its config.metrics is "
                              "empty), so it keeps no best checkpoint; use --step N or the latest "
                              "checkpoint (no --step)")
    return metric


class BestCheckpoint:
    """Saves the train state of each evaluation whose `metric` is lower than the best so far.

    Every process calls it alike (saves are collective). A context manager: leaving it waits
    for a save in flight.
    """

    def __init__(self, workdir: str, metric: str, metadata: Mapping[str, Any]):
        self.metric = metric
        self.checkpoints = Checkpoints(workdir, metadata=metadata, best_by=metric)
        self.step: int | None = None
        self.value = math.inf
        if self.checkpoints.steps:
            step = self.checkpoints.resolve_step()
            value = (self.checkpoints.metrics(step) or {}).get(metric)
            if value is None:
                log.warning("the best checkpoint %s was chosen by other metrics; from now on the one "
                            "with the lowest %s is kept", self.checkpoints.step_dir(step), metric)
            else:
                self.step, self.value = step, value

    def __enter__(self) -> "BestCheckpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.checkpoints.__exit__(*exc)

    def offer(self, step: int, state: Any, results: Mapping[str, float]) -> bool:
        """Starts saving `state` as the best if results[metric] beats the best so far; returns
        whether it did. A step already kept (evaluated again after a resume from before it)
        keeps its first save."""
        value = results[self.metric]
        if not value < self.value or step in self.checkpoints.steps:
            return False
        self.checkpoints.save(step, state, force=True, metrics=results)
        self.step, self.value = step, value
        return True
