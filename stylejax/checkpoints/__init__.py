"""Checkpoints of the train state (orbax), and the generator restored from them for sampling."""

from stylejax.checkpoints.generator import TrainedGenerator, load_generator, read_config
from stylejax.checkpoints.manager import Checkpoints, checkpoint_dir

__all__ = ["Checkpoints", "TrainedGenerator", "checkpoint_dir", "load_generator", "read_config"]
