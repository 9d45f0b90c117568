"""FFHQ at 256x256, the official 'paper256' config (prepare the images as dataset 'ffhq256')."""

from stylejax.configs import official_config


def get_config():
    config = official_config("paper256", dataset="ffhq256", resolution=256, total_kimg=25000, xflip=True)
    config.ppl_crop = True  # PPL on the face, as the official ppl_wend
    return config
