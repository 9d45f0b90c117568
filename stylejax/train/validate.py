"""Checks on a config that fail before anything is compiled or written."""

import ml_collections

from stylejax.errors import ConfigError
from stylejax.models.architecture import check_resolution
from stylejax.models.discriminator import D_ARCHITECTURES
from stylejax.models.modconv import MODCONV_FORMS
from stylejax.models.synthesis import G_ARCHITECTURES
from stylejax.networks import DTYPES, GENERATIONS, MODEL_IMPLS
from stylejax.train.augment import PIPES

POSITIVE_INTS = ("num_train_steps", "batch_size", "log_every_steps", "resolution",
                 "loss.d_reg_interval", "loss.g_reg_interval", "loss.pl_batch_shrink",
                 "max_nonfinite_steps", "checkpoint_keep", "model.z_dim", "model.w_dim",
                 "model.mapping_layers")
NON_NEGATIVE = ("seed", "sample_every_steps", "checkpoint_every_steps", "eval_every_steps",
                "optim.g_lr", "optim.d_lr", "loss.r1_gamma", "loss.pl_weight", "ema_kimg", "max_images")
UNIT_INTERVAL = ("optim.beta1", "optim.beta2", "loss.style_mixing_prob", "loss.pl_decay")


def _get(config: ml_collections.ConfigDict, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def validate_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Raises ConfigError naming the first bad key; types are already checked by ml_collections."""
    for key in POSITIVE_INTS:
        if _get(config, key) < 1:
            raise ConfigError(f"config.{key} must be >= 1, got {_get(config, key)}")
    for key in NON_NEGATIVE:
        if _get(config, key) < 0:
            raise ConfigError(f"config.{key} must be >= 0, got {_get(config, key)}")
    for key in UNIT_INTERVAL:
        if not 0 <= _get(config, key) <= 1:
            raise ConfigError(f"config.{key} must be in [0, 1], got {_get(config, key)}")
    try:
        check_resolution(config.resolution)
    except ValueError as e:
        raise ConfigError(f"config.resolution: {e}") from None
    batch = config.batch_size
    if batch % num_devices:
        suggestion = max(1, batch // num_devices) * num_devices
        raise ConfigError(f"config.batch_size={batch} is not divisible by the {num_devices} devices; "
                          f"use a multiple of {num_devices}, e.g. --config.batch_size={suggestion}")
    group = min(config.model.mbstd_group_size, batch)
    if config.model.mbstd_num_channels and batch % group:
        raise ConfigError(f"config.batch_size={batch} is not divisible by the minibatch-stddev group "
                          f"size {group}; change config.model.mbstd_group_size or the batch size")
    validate_architecture(config.model)
    if config.model.generation == "stylegan1" and config.conditional:
        raise ConfigError("config.model.generation='stylegan1' builds unconditional networks only; "
                          "set --config.conditional=False or use generation 'stylegan2'")
    validate_progressive(config)
    validate_augment(config.augment)
    validate_device_batch(config, num_devices)
    if config.restore_step is not None and config.restore_step < 0:
        raise ConfigError(f"config.restore_step must be a saved step (>= 0) or None, got "
                          f"{config.restore_step}")
    if config.loss.pl_weight > 0 and batch // config.loss.pl_batch_shrink < 1:
        raise ConfigError(f"config.loss.pl_batch_shrink={config.loss.pl_batch_shrink} leaves no "
                          f"samples of a batch of {batch} for the path-length regulariser")
    if config.ema_rampup is not None and config.ema_rampup <= 0:
        raise ConfigError(f"config.ema_rampup must be > 0 or None, got {config.ema_rampup}")
    if len(config.sample_grid) != 2 or min(config.sample_grid) < 1:
        raise ConfigError(f"config.sample_grid must be (columns, rows), got {config.sample_grid}")


def validate_architecture(model: ml_collections.ConfigDict) -> None:
    for key, allowed in (("generation", GENERATIONS), ("g_architecture", G_ARCHITECTURES),
                         ("d_architecture", D_ARCHITECTURES), ("impl", MODEL_IMPLS),
                         ("modconv", MODCONV_FORMS), ("dtype", tuple(DTYPES))):
        if model[key] not in allowed:
            raise ConfigError(f"config.model.{key}={model[key]!r} is not one of {', '.join(allowed)}")
    if model.conv_clamp is not None and not model.conv_clamp > 0:
        raise ConfigError(f"config.model.conv_clamp must be > 0 or None, got {model.conv_clamp}")


def validate_progressive(config: ml_collections.ConfigDict) -> None:
    p = config.progressive
    if not p.enabled:
        return
    if config.model.generation != "stylegan1":
        raise ConfigError("config.progressive.enabled needs config.model.generation='stylegan1' "
                          "(StyleGAN2 does not grow); set --config.model.generation=stylegan1")
    res = p.initial_resolution
    if not isinstance(res, int) or res < 4 or res > config.resolution or res & (res - 1):
        raise ConfigError(f"config.progressive.initial_resolution must be a power of two from 4 to "
                          f"config.resolution ({config.resolution}), got {res!r}")
    if min(p.training_kimg, p.transition_kimg) < 0 or p.training_kimg + p.transition_kimg <= 0:
        raise ConfigError("config.progressive.training_kimg and transition_kimg must be >= 0, not "
                          f"both 0; got {p.training_kimg} and {p.transition_kimg}")


AUGMENT_MODES = ("off", "fixed", "ada")


def validate_augment(augment: ml_collections.ConfigDict) -> None:
    for key, allowed in (("mode", AUGMENT_MODES), ("pipe", tuple(PIPES))):
        if augment[key] not in allowed:
            raise ConfigError(f"config.augment.{key}={augment[key]!r} is not one of {', '.join(allowed)}")
    for key in ("p", "target"):
        if not 0 <= augment[key] <= 1:
            raise ConfigError(f"config.augment.{key} must be in [0, 1], got {augment[key]}")
    if not augment.kimg > 0:
        raise ConfigError(f"config.augment.kimg must be > 0 (thousands of images for p to move by 1), "
                          f"got {augment.kimg}")
    if augment.interval < 1:
        raise ConfigError(f"config.augment.interval must be >= 1 (steps between p's adjustments), "
                          f"got {augment.interval}")


def validate_device_batch(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Rounds must split every device's share evenly and keep the batch's minibatch-std groups."""
    device_batch, share = config.device_batch, config.batch_size // num_devices
    if device_batch is not None and device_batch < 1:
        raise ConfigError(f"config.device_batch must be >= 1 or None, got {device_batch}")
    if device_batch is None or device_batch >= share:
        return  # one round
    if share % device_batch:
        raise ConfigError(f"config.device_batch={device_batch} does not divide {share}, the images "
                          f"per device (config.batch_size={config.batch_size} over {num_devices} "
                          f"devices); use a divisor of {share}, or None for one round")
    group = min(config.model.mbstd_group_size, config.batch_size)
    if config.model.mbstd_num_channels and device_batch % group:
        raise ConfigError(f"config.device_batch={device_batch} is not a multiple of the "
                          f"minibatch-stddev group size {group}, so a round would split its groups; "
                          f"use a multiple of {group}")
