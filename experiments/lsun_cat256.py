"""LSUN Cat at 256x256, StyleGAN2 config-f as trained for the paper (88M images, gamma 10)."""

from stylejax.configs import official_config


def get_config():
    return official_config("stylegan2", dataset="lsun_cat256", resolution=256, total_kimg=88000, xflip=False)
