"""FFHQ at 256x256, the official 'paper256' config (prepare the images as dataset 'ffhq256')."""

from stylejax.configs import official_config


def get_config():
    return official_config("paper256", dataset="ffhq256", resolution=256, total_kimg=25000, xflip=True)
