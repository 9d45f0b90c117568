"""The default experiment (digits at 16x16, 3200 steps, the official small-image losses, no noise
inputs) with StyleGAN (2018)'s networks instead of StyleGAN2's, so that the same minutes on 2 CPU
cores compare the two. The paper grows from 8x8; stylejax trains at 16x16 from the start
(progressive growing is not in stylejax yet)."""

import importlib.util
import os


def get_config():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py")
    spec = importlib.util.spec_from_file_location("default_experiment", path)
    default = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(default)
    config = default.get_config()
    config.model.generation = "stylegan1"
    return config
