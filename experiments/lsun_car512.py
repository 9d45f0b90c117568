"""LSUN Car at 512x512 (384 high, padded: prepare with --crop pad), StyleGAN2 config-f, 57M images."""

from stylejax.configs import official_config


def get_config():
    return official_config("stylegan2", dataset="lsun_car512", resolution=512, total_kimg=57000, xflip=False)
