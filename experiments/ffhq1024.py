"""FFHQ at 1024x1024, StyleGAN2 config-f (prepare the images as dataset 'ffhq1024')."""

from stylejax.configs import official_config


def get_config():
    config = official_config("stylegan2", dataset="ffhq1024", resolution=1024, total_kimg=25000, xflip=True)
    config.ppl_crop = True  # PPL on the face, as the official ppl_wend
    return config
