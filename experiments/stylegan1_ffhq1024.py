"""FFHQ at 1024x1024, StyleGAN (2018) as the paper's FFHQ run (25M images, R1 gamma 10; prepare
the images as dataset 'ffhq1024'). The official run grows progressively from 8x8 with minibatch
and learning rate per resolution; stylejax trains it at 1024x1024 from the start (lod 0), with
the official values of the last phase."""

from stylejax.configs import stylegan1_config


def get_config():
    return stylegan1_config(dataset="ffhq1024", resolution=1024, total_kimg=25000, xflip=True)
