"""The tests' tiny training run as an experiment file, for python -m stylejax.main in a subprocess
(the data directory comes with --config.data_dir)."""

from tests.train_helpers import tiny_config


def run_config(data_dir: str | None = None, steps: int = 6):
    """tiny_config on 16x16 digits, a checkpoint every 2 steps and no sample grids; R1 every step
    and no path-length term, so that one program is compiled (the cheapest with a regulariser)."""
    config = tiny_config()
    config.dataset = "digits16"
    config.data_dir = data_dir
    config.num_train_steps = steps
    config.checkpoint_every_steps = 2
    config.log_every_steps = 1
    config.sample_every_steps = 0
    config.loss.pl_weight = 0.0
    config.loss.d_reg_interval = 1
    return config


def get_config():
    return run_config()
