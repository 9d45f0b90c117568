"""stylejax: StyleGAN2 in JAX/Flax."""

import os

# TensorFlow (used only by the input pipeline) logs its start-up at INFO: keep warnings, drop noise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
