"""The modulated convolution of StyleGAN2, in two numerically equivalent forms.

'fused': every sample gets its own modulated (and demodulated) weight, and the
batch runs as one grouped convolution.  'shared': the styles scale the input
activations, one shared-weight convolution runs over the batch, and the
demodulation coefficients scale its output.  Which one is faster depends on
the backend and batch size, so it is a config switch.
"""

import jax
import jax.numpy as jnp
import numpy as np

from stylejax.models.conv import Conv2d, conv2d
from stylejax.models.resample import conv2d_resample

MODCONV_FORMS = ("fused", "shared")
DEMOD_EPS = 1e-8


def demodulation_coefficients(weight: jnp.ndarray, styles: jnp.ndarray) -> jnp.ndarray:
    """rsqrt(sum_{k,k,I} (w * s_I)^2 + eps) per sample and output channel, [N, O].

    Computed as styles^2 @ sum_kk(w^2), which never materialises the
    per-sample weights.
    """
    weight_sq = jnp.sum(jnp.square(weight), axis=(0, 1))  # [I, O]
    return jax.lax.rsqrt(jnp.square(styles) @ weight_sq + DEMOD_EPS)


def modulated_conv2d(x: jnp.ndarray, weight: jnp.ndarray, styles: jnp.ndarray, *,
                     demodulate: bool = True, up: int = 1, padding: int = 0,
                     resample_filter: np.ndarray | None = None,
                     form: str = "shared", stride1_conv: Conv2d = conv2d) -> jnp.ndarray:
    """x [N,H,W,I], weight [k,k,I,O] (HWIO), styles [N,I] -> [N,H*up,W*up,O]; `stride1_conv`
    runs the 'shared' form's convolutions (the 'fused' form's are grouped: lax's own)."""
    if form not in MODCONV_FORMS:
        raise ValueError(f"unknown modulated-conv form {form!r}; use one of {MODCONV_FORMS}")
    batch, _, _, in_channels = x.shape
    k, out_channels = weight.shape[0], weight.shape[-1]
    styles = styles.astype(x.dtype)
    weight = weight.astype(x.dtype)
    dcoefs = demodulation_coefficients(weight, styles) if demodulate else None

    if form == "shared":
        x = x * styles[:, None, None, :]
        x = conv2d_resample(x, weight, resample_filter, up=up, padding=padding,
                            stride1_conv=stride1_conv)
        return x * dcoefs[:, None, None, :] if demodulate else x

    w = weight[None] * styles[:, None, None, :, None]  # [N,k,k,I,O]
    if demodulate:
        w = w * dcoefs[:, None, None, None, :]
    w = jnp.transpose(w, (1, 2, 3, 0, 4)).reshape(k, k, in_channels, batch * out_channels)
    _, h, wd, _ = x.shape
    x = jnp.transpose(x, (1, 2, 0, 3)).reshape(1, h, wd, batch * in_channels)
    x = conv2d_resample(x, w, resample_filter, up=up, padding=padding, groups=batch)
    _, ho, wo, _ = x.shape
    return jnp.transpose(x.reshape(ho, wo, batch, out_channels), (2, 0, 1, 3))
