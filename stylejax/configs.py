"""The one default config every preset in experiments/ starts from, and the 'auto' rule."""

import ml_collections


def model_config() -> ml_collections.ConfigDict:
    """The networks' keys (config.model): the official StyleGAN2 config-f values."""
    model = ml_collections.ConfigDict()
    model.z_dim = 512
    model.w_dim = 512
    model.channel_base = 16384
    model.channel_max = 512
    model.mapping_layers = 8
    model.modconv = "shared"  # or "fused"
    model.use_noise = True  # per-pixel noise inputs to every synthesis layer, as official
    model.dtype = "float32"  # compute dtype; "bfloat16" keeps float32 params
    model.mbstd_group_size = 4
    model.mbstd_num_channels = 1
    # "stylegan2", or "stylegan1": StyleGAN (2018)'s AdaIN G and its D (stylejax/models/stylegan1.py),
    # which ignore g_architecture, d_architecture, modconv and conv_clamp.
    model.generation = "stylegan2"
    model.g_architecture = "skip"  # or "orig" / "resnet", as the official G
    model.d_architecture = "resnet"  # or "orig" (no residual skips, as official cifar) / "skip"
    # The stride-1 convolution: "reference" (lax's), "tuned" (stylejax/ops/cpu_conv.py, for XLA
    # CPU) or "auto" (tuned on the CPU backend only: stylejax.networks.resolve_impl).
    model.impl = "auto"
    # Clip every conv's output to +-conv_clamp (the official networks with fp16 layers use 256).
    model.conv_clamp = ml_collections.FieldReference(None, field_type=float)
    return model


def base_config() -> ml_collections.ConfigDict:
    """Every key a run understands; presets override values, never add keys."""
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.dataset = "digits"  # a TFDS name; see `python -m stylejax.data.prepare`
    config.resolution = 32  # must equal the dataset's; the model is built for it
    config.data_dir = ml_collections.FieldReference(None, field_type=str)
    config.xflip = False  # random horizontal flips of reals
    config.conditional = False  # train on the dataset's labels (c_dim = num_classes)

    config.num_train_steps = 1000  # one step = one G and one D update on one global batch
    config.batch_size = 32  # global, over all devices and processes
    # At most this many images per device in one forward/backward round (the official
    # --batch-gpu): a larger share of the batch runs in rounds of this many, their gradients
    # averaged; on a CPU that keeps activations in cache. None: the whole share in one round.
    config.device_batch = ml_collections.FieldReference(None, field_type=int)
    config.log_every_steps = 50
    config.sample_every_steps = 500
    config.checkpoint_every_steps = 1000  # 0: only at the end (and on SIGTERM / Ctrl-C)
    config.checkpoint_keep = 3  # the newest this many checkpoints are kept
    # Resume from this step instead of the latest (e.g. when the latest is damaged); the newer
    # steps are moved to WORKDIR/checkpoints_set_aside, never deleted.
    config.restore_step = ml_collections.FieldReference(None, field_type=int)
    config.eval_every_steps = 0  # 0: no periodic evaluation
    # Metrics (stylejax.metrics): 'fid' / 'kid' (FID Inception-v3, needs inception_path),
    # 'fid_digits' / 'kid_digits' (offline, digits datasets), 'precision' / 'recall' (VGG16
    # fc2, needs vgg16_path) and the path lengths 'ppl_wend' / 'ppl_zfull' (LPIPS, needs
    # vgg16_path and lpips_path); the first one picks the best checkpoint (lower is better, so
    # not precision or recall).
    config.metrics = ()
    config.metrics_num_samples = 50000  # generated images per evaluation (FID50k)
    config.metrics_batch_size = 64  # global; rounded up to a multiple of the device count
    config.metrics_split = "train"  # the dataset split generated images are compared with
    # inception-2015-12-05.tgz (or the classify_image_graph_def.pb in it), from
    # http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz
    config.inception_path = ml_collections.FieldReference(None, field_type=str)
    # torchvision's vgg16-397923af.pth, from https://download.pytorch.org/models/
    config.vgg16_path = ml_collections.FieldReference(None, field_type=str)
    # the LPIPS v0.1 heads vgg.pth, from github.com/richzhang/PerceptualSimilarity lpips/weights/v0.1
    config.lpips_path = ml_collections.FieldReference(None, field_type=str)
    config.ppl_crop = False  # PPL on the official centre face crop (FFHQ-like data) or whole images
    # Dataset statistics and the digits classifier; None: $STYLEJAX_CACHE_DIR or ~/.cache/stylejax
    config.metrics_cache_dir = ml_collections.FieldReference(None, field_type=str)
    config.sample_grid = (8, 8)  # fixed-seed sample grid, columns x rows
    # Stop after this many steps in a row with a non-finite loss or gradient (their updates are
    # never applied); 1: at the first one.
    config.max_nonfinite_steps = 1

    config.model = model_config()

    config.optim = ml_collections.ConfigDict()
    config.optim.g_lr = 0.0025
    config.optim.d_lr = 0.0025
    config.optim.beta1 = 0.0
    config.optim.beta2 = 0.99
    config.optim.eps = 1e-8

    config.loss = ml_collections.ConfigDict()
    config.loss.r1_gamma = 1.0
    config.loss.d_reg_interval = 16  # lazy R1 every this many steps
    config.loss.g_reg_interval = 4  # lazy path length every this many steps
    config.loss.pl_weight = 2.0
    config.loss.pl_decay = 0.01
    config.loss.pl_batch_shrink = 2
    config.loss.style_mixing_prob = 0.9

    # Fine-tune from an official network file (a stylegan2-ada-pytorch snapshot or a TensorFlow
    # StyleGAN2 .pkl): G, D, G_ema and w_avg from the file, the architecture from its kwargs.
    config.init_from = ml_collections.FieldReference(None, field_type=str)

    # Adaptive discriminator augmentation (stylejax/train/augment.py): every image D sees is
    # augmented with probability p; mode "off", "fixed" (p as set) or "ada" (p starts as set and
    # every `interval` steps moves by batch * interval / (kimg * 1000) towards the mean sign of
    # D(real) being `target`). pipe: blit, geom, color, filter, noise, cutout, bg, bgc, bgcf,
    # bgcfn, bgcfnc. p_from_network: a fine-tuning run (init_from) starts p from the file's.
    config.augment = ml_collections.ConfigDict(dict(
        mode="off", pipe="bgc", p=0.0, target=0.6, kimg=500.0, interval=4, p_from_network=False))
    # Train on the first this many images of the dataset (the official --max-size); 0: all.
    config.max_images = 0

    # Progressive growing (model.generation 'stylegan1' only; stylejax/train/progressive.py): start
    # at initial_resolution, train each resolution for training_kimg thousand images and fade the
    # next in over transition_kimg, as the official StyleGAN schedule. Batch and learning rate stay
    # as set (the official schedule also changes them per resolution).
    config.progressive = ml_collections.ConfigDict(dict(
        enabled=False, initial_resolution=8, training_kimg=600.0, transition_kimg=600.0))

    config.ema_kimg = 10.0  # G_ema half-life in thousands of images
    config.ema_rampup = ml_collections.FieldReference(None, field_type=float)  # e.g. 0.05
    config.auto = False  # derive batch, gamma, ema, ... from resolution and device count
    return config


def apply_auto_rule(config: ml_collections.ConfigDict, resolution: int, num_devices: int) -> None:
    """The official 'auto' config: hyperparameters from resolution and device count."""
    batch = max(min(num_devices * min(4096 // resolution, 32), 64), num_devices)
    config.batch_size = batch
    config.model.mbstd_group_size = min(batch // num_devices, 4)
    config.model.channel_base = 32768 if resolution >= 512 else 16384
    config.model.channel_max = 512
    config.model.mapping_layers = 2
    lr = 0.002 if resolution >= 1024 else 0.0025
    config.optim.g_lr = config.optim.d_lr = lr
    config.loss.r1_gamma = 0.0002 * resolution ** 2 / batch
    config.ema_kimg = batch * 10 / 32
    config.ema_rampup = 0.05


# The official stylegan2-ada-pytorch configs (train.py cfg_specs), in our units.
OFFICIAL_SPECS = {
    # name:      batch, mbstd group, channel_base, lr, r1 gamma, ema_kimg, ema_rampup, mapping layers
    "stylegan2": dict(batch=32, mbstd=4, channel_base=32768, lr=0.002, gamma=10.0, ema=10.0,
                      ramp=None, mapping=8),
    "paper256": dict(batch=64, mbstd=8, channel_base=16384, lr=0.0025, gamma=1.0, ema=20.0,
                     ramp=None, mapping=8),
    "paper512": dict(batch=64, mbstd=8, channel_base=32768, lr=0.0025, gamma=0.5, ema=20.0,
                     ramp=None, mapping=8),
    "cifar": dict(batch=64, mbstd=32, channel_base=32768, lr=0.0025, gamma=0.01, ema=500.0,
                  ramp=0.05, mapping=2),
}


def official_config(spec: str, *, dataset: str, resolution: int, total_kimg: int,
                    xflip: bool) -> ml_collections.ConfigDict:
    """A preset mirroring one official config: same batch, networks, lr, gamma and EMA."""
    s = OFFICIAL_SPECS[spec]
    config = base_config()
    config.dataset = dataset
    config.resolution = resolution
    config.xflip = xflip
    config.batch_size = s["batch"]
    config.num_train_steps = total_kimg * 1000 // s["batch"]
    config.log_every_steps = 100
    config.sample_every_steps = 2000
    config.checkpoint_every_steps = 2000
    config.eval_every_steps = 10000
    config.model.mbstd_group_size = s["mbstd"]
    config.model.channel_base = s["channel_base"]
    config.model.mapping_layers = s["mapping"]
    config.optim.g_lr = config.optim.d_lr = s["lr"]
    config.loss.r1_gamma = s["gamma"]
    config.ema_kimg = s["ema"]
    config.ema_rampup = s["ramp"]
    config.augment.mode = "ada"  # the official default, with its bgc pipe
    if spec == "cifar":  # the official cifar config turns these off
        config.loss.pl_weight = 0.0
        config.loss.style_mixing_prob = 0.0
        config.model.d_architecture = "orig"
    return config


# The official StyleGAN (2018) schedule's learning rate at 128x128 and up (train.py, 8 GPUs);
# the minibatch there is 32 from 128x128 up.
STYLEGAN1_LR = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}


def stylegan1_config(*, dataset: str, resolution: int, total_kimg: int,
                     xflip: bool) -> ml_collections.ConfigDict:
    """A preset of the paper's StyleGAN training (NVlabs/stylegan train.py): progressive growing
    from 8x8 (600 kimg per resolution, 600 kimg fades), non-saturating logistic loss with R1
    gamma 10, no path-length regularisation, style mixing 0.9, Adam (0, 0.99), G_ema half-life
    10 kimg, fmap_base 8192, no augmentation. Batch 32 and the learning rate of the final
    resolution throughout (the official schedule uses larger batches and lr 0.001 below 128x128).
    R1 is lazy (every loss.d_reg_interval steps) as in stylejax's StyleGAN2; the official
    StyleGAN computes it every step."""
    config = base_config()
    config.dataset = dataset
    config.resolution = resolution
    config.xflip = xflip
    config.batch_size = 32
    config.num_train_steps = total_kimg * 1000 // config.batch_size
    config.log_every_steps = 100
    config.sample_every_steps = 2000
    config.checkpoint_every_steps = 2000
    config.eval_every_steps = 10000
    config.model.generation = "stylegan1"
    config.model.channel_base = 16384
    config.optim.g_lr = config.optim.d_lr = STYLEGAN1_LR.get(resolution, 0.001)
    config.loss.r1_gamma = 10.0
    config.loss.pl_weight = 0.0
    config.ema_kimg = 10.0
    config.progressive.enabled = True
    return config
