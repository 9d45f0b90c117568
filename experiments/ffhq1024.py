"""FFHQ at 1024x1024, StyleGAN2 config-f (prepare the images as dataset 'ffhq1024')."""

from stylejax.configs import official_config


def get_config():
    return official_config("stylegan2", dataset="ffhq1024", resolution=1024, total_kimg=25000, xflip=True)
