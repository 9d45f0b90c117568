"""LSUN Cat at 256x256, StyleGAN (2018) as the paper's run (the official train.py's 'cat', 25M
images, R1 gamma 10), growing progressively from 8x8 (stylejax.configs.stylegan1_config)."""

from stylejax.configs import stylegan1_config


def get_config():
    return stylegan1_config(dataset="lsun_cat256", resolution=256, total_kimg=25000, xflip=False)
