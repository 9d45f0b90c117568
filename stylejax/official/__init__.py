"""NVIDIA's released StyleGAN and StyleGAN2 networks, read without running their code."""

from stylejax.official.convert import Architecture
from stylejax.official.files import NetworkFile, is_network_file, load_network_file

__all__ = ["Architecture", "NetworkFile", "is_network_file", "load_network_file"]
