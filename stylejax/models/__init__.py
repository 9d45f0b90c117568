"""StyleGAN2 networks in Flax linen."""

from stylejax.models.discriminator import Discriminator
from stylejax.models.generator import Generator
from stylejax.models.styles import blend_styles, mix_styles, num_ws_for, truncate

__all__ = ["Generator", "Discriminator", "blend_styles", "mix_styles", "num_ws_for", "truncate"]
