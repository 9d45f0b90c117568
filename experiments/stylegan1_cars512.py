"""LSUN Car at 512x384, StyleGAN (2018) as the paper's run (25M images, R1 gamma 10), growing
progressively from 8x8 (stylejax.configs.stylegan1_config).

As the official code, the generator makes 512x512 images: prepare the 512x384 cars padded to a
square (`--crop pad`: black bars of 64 rows above and below), and crop rows 64-447 of a generated
image to see the car at 512x384, as the official figures do."""

from stylejax.configs import stylegan1_config


def get_config():
    return stylegan1_config(dataset="lsun_car512", resolution=512, total_kimg=25000, xflip=False)
