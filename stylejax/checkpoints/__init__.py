"""Checkpoints of the train state (orbax), the best one by a metric, and the generator restored
from them for sampling."""

from stylejax.checkpoints.best import BestCheckpoint, chosen_metric
from stylejax.checkpoints.generator import TrainedGenerator, load_generator, read_config
from stylejax.checkpoints.manager import Checkpoints, checkpoint_dir

__all__ = ["BestCheckpoint", "Checkpoints", "TrainedGenerator", "checkpoint_dir",
           "chosen_metric", "load_generator", "read_config"]
