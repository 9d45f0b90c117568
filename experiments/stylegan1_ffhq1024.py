"""FFHQ at 1024x1024, StyleGAN (2018) as the paper's FFHQ run (25M images, R1 gamma 10; prepare
the images as dataset 'ffhq1024'). It grows progressively from 8x8 as the official run, with batch
32 and the 1024x1024 learning rate throughout (stylejax.configs.stylegan1_config)."""

from stylejax.configs import stylegan1_config


def get_config():
    return stylegan1_config(dataset="ffhq1024", resolution=1024, total_kimg=25000, xflip=True)
