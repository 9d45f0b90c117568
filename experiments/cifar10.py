"""CIFAR-10, conditional, the official 'cifar' config (TFDS 'cifar10' in array_record format)."""

from stylejax.configs import official_config


def get_config():
    config = official_config("cifar", dataset="cifar10", resolution=32, total_kimg=100000, xflip=True)
    config.conditional = True
    return config
