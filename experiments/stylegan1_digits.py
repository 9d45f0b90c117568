"""The default experiment (digits at 16x16, 3200 steps, the official small-image losses, no noise
inputs) with StyleGAN (2018)'s networks instead of StyleGAN2's, so that the same minutes on 2 CPU
cores compare the two. As the paper, it grows progressively: 8x8 for the first 25 kimg, 16x16
faded in over the next 25, 16x16 for the last 52 of the 102 kimg."""

import importlib.util
import os


def get_config():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py")
    spec = importlib.util.spec_from_file_location("default_experiment", path)
    default = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(default)
    config = default.get_config()
    config.model.generation = "stylegan1"
    config.progressive.update(enabled=True, initial_resolution=8, training_kimg=25.0,
                              transition_kimg=25.0)
    return config
