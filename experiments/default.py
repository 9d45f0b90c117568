"""The default experiment: offline digits at 32x32, small enough for 2 CPU cores in ~15 minutes."""

from stylejax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "digits"
    config.resolution = 32
    config.num_train_steps = 800
    config.batch_size = 32
    config.log_every_steps = 50
    config.sample_every_steps = 200
    config.checkpoint_every_steps = 200
    config.eval_every_steps = 200
    config.metrics = ("fid_digits", "kid_digits")
    config.metrics_num_samples = 2000
    config.model.channel_base = 2048  # 64 channels at every resolution
    config.model.channel_max = 64
    config.model.mapping_layers = 2
    config.loss.r1_gamma = 0.01
    config.ema_kimg = 10.0
    config.ema_rampup = 0.05
    return config
