"""StyleGAN2 networks in Flax linen."""

from stylejax.models.discriminator import Discriminator
from stylejax.models.generator import Generator
from stylejax.models.styles import mix_styles, num_ws_for, truncate

__all__ = ["Generator", "Discriminator", "mix_styles", "num_ws_for", "truncate"]
