"""Trains the official stylegan2-ada-pytorch trainer on the default experiment's digits and recipe.

A tool run outside the suite (issue 30: the official trainer's fid_digits as the yardstick for
the default experiment). It needs a Python with PyTorch (CPU is enough) and psutil, a checkout
of NVlabs/stylegan2-ada-pytorch, and the digits16 train split as PNGs, which `export` writes
with stylejax's Python (RGB, grey replicated: the pixels stylejax trains on); never run by the
tests:

    python benchmarks/official_digits.py export DIGITS16_PNG_DIR
    TORCH_PY benchmarks/official_digits.py train OFFICIAL_CHECKOUT DIGITS16_PNG_DIR RUN_DIR \
        --seed 0 --threads 1

It calls the official training/training_loop.py training_loop() in-process with every kwarg
spelled out below (the default experiment's recipe, not train.py's presets), on the CPU: the
loop's CUDA-only calls (its device, timing events, memory statistics, pinned memory) are
replaced with CPU ones, and torch.utils.data.Sampler takes the argument newer torch dropped;
nothing else. At the end G_ema of the last snapshot (held in memory,
never unpickled) writes --num-images PNGs (z of seeds 0..N-1 as the official generate.py draws
them, truncation 1, constant noise) to RUN_DIR/images, for
`python -m stylejax.evaluate --images RUN_DIR/images --dataset digits16`.
"""

import argparse
import os
import sys
import time
import types

import numpy as np

Z_DIM = W_DIM = 512  # stylejax's model_config
CHANNELS = dict(channel_base=2048, channel_max=64)  # 64 at 4, 8 and 16, as experiments/default.py
FLOAT32 = dict(num_fp16_res=0, conv_clamp=None)


def loop_kwargs(data: str, run_dir: str, seed: int, total_kimg: float, kimg_per_tick: float,
                snapshot_ticks: int, batch_gpu: int) -> dict:
    """Every training_loop() kwarg: experiments/default.py on stylejax's base_config."""
    adam = dict(class_name="torch.optim.Adam", lr=0.0025, betas=[0.0, 0.99], eps=1e-8)
    return dict(
        run_dir=run_dir,
        training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path=data,
                                 resolution=16, use_labels=False, max_size=None, xflip=False),
        data_loader_kwargs=dict(pin_memory=False, num_workers=0),
        G_kwargs=dict(class_name="training.networks.Generator", z_dim=Z_DIM, w_dim=W_DIM,
                      mapping_kwargs=dict(num_layers=2),
                      synthesis_kwargs=dict(architecture="skip", use_noise=False, **CHANNELS,
                                            **FLOAT32)),
        D_kwargs=dict(class_name="training.networks.Discriminator", architecture="resnet",
                      **CHANNELS, **FLOAT32, block_kwargs={}, mapping_kwargs={},
                      epilogue_kwargs=dict(mbstd_group_size=4, mbstd_num_channels=1)),
        G_opt_kwargs=dict(adam),
        D_opt_kwargs=dict(adam),
        augment_kwargs=None,
        loss_kwargs=dict(class_name="training.loss.StyleGAN2Loss", r1_gamma=0.01,
                         style_mixing_prob=0.0, pl_weight=0.0),
        metrics=[],
        random_seed=seed,
        num_gpus=1,
        rank=0,
        batch_size=32,
        batch_gpu=batch_gpu,
        ema_kimg=10.0,
        ema_rampup=0.05,
        G_reg_interval=4,  # no path length, but G's Adam keeps the 4/5 lr and beta adjustment
        D_reg_interval=16,
        augment_p=0,
        ada_target=None,
        total_kimg=total_kimg,
        kimg_per_tick=kimg_per_tick,
        image_snapshot_ticks=snapshot_ticks,
        network_snapshot_ticks=snapshot_ticks,
        resume_pkl=None,
        cudnn_benchmark=False,
        allow_tf32=False,
    )


class _Event:
    """A CPU stand-in for torch.cuda.Event: wall time between record() calls, in ms."""

    def __init__(self, **_):
        self.t = 0.0

    def record(self, _stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass

    def elapsed_time(self, end: "_Event") -> float:
        return (end.t - self.t) * 1000


def cpu_training_loop(torch, training_loop, snapshots: list):
    """The official module with its CUDA calls on the CPU; every snapshot it pickles is kept."""
    shim = types.ModuleType("torch")
    shim.__getattr__ = lambda name: getattr(torch, name)
    shim.device = lambda *_a, **_k: torch.device("cpu")
    shim.cuda = types.SimpleNamespace(Event=_Event, current_stream=lambda _d=None: None,
                                      max_memory_allocated=lambda _d=None: 0,
                                      reset_peak_memory_stats=lambda _d=None: None)
    training_loop.torch = shim
    torch.Tensor.pin_memory = lambda self, *_a, **_k: self
    # torch >= 2.2's Sampler takes no data_source; the official InfiniteSampler still passes one.
    torch.utils.data.Sampler.__init__ = lambda self, *_a, **_k: None
    real_pickle = training_loop.pickle

    def dump(data, f):
        snapshots.append(data)
        real_pickle.dump(data, f)
    training_loop.pickle = types.SimpleNamespace(dump=dump)
    return training_loop.training_loop


def write_images(torch, G_ema, out: str, num: int, batch: int = 250) -> None:
    """PNGs of G_ema for seeds 0..num-1 (z as generate.py draws it), as the official export."""
    from PIL import Image
    os.makedirs(out, exist_ok=True)
    for start in range(0, num, batch):
        seeds = range(start, min(start + batch, num))
        z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(G_ema.z_dim) for s in seeds]))
        with torch.no_grad():
            img = G_ema(z.float(), torch.zeros([len(z), 0]), truncation_psi=1, noise_mode="const")
        img = (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
        for s, pixels in zip(seeds, img, strict=True):
            mode = "L" if pixels.shape[-1] == 1 else "RGB"
            Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(
                os.path.join(out, f"seed{s:04d}.png"))


def export_digits(out: str) -> None:
    """digits16's train split as PNGs, made as stylejax.data.digits builds the dataset."""
    from PIL import Image

    from stylejax.data.digits import digits_splits
    from stylejax.data.images import resize

    os.makedirs(out, exist_ok=True)
    images, _, splits = digits_splits()
    for n, i in enumerate(splits["train"]):
        grey = resize(images[i][..., None], 16, "lanczos")
        Image.fromarray(np.repeat(grey, 3, axis=-1), "RGB").save(os.path.join(out, f"img{n:05d}.png"))
    print(f"wrote {len(splits['train'])} images to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("export", help="with stylejax's Python").add_argument("out")
    train = commands.add_parser("train", help="with a PyTorch Python")
    train.add_argument("official", help="a checkout of NVlabs/stylegan2-ada-pytorch")
    train.add_argument("data", help="digits16's train split as PNGs (a folder or zip)")
    train.add_argument("run_dir")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    train.add_argument("--kimg", type=float, default=102.4, help="3200 steps of 32: the default")
    train.add_argument("--kimg_per_tick", type=float, default=4.0)
    train.add_argument("--snapshot_ticks", type=int, default=5, help="the last is always saved")
    train.add_argument("--batch_gpu", type=int, default=32)
    train.add_argument("--num_images", type=int, default=2000)
    args = parser.parse_args()
    if args.command == "export":
        export_digits(args.out)
        return
    sys.path.insert(0, args.official)
    import torch
    from training import training_loop

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    os.makedirs(args.run_dir, exist_ok=True)
    snapshots: list = []
    run = cpu_training_loop(torch, training_loop, snapshots)
    kwargs = loop_kwargs(args.data, args.run_dir, args.seed, args.kimg, args.kimg_per_tick,
                         args.snapshot_ticks, args.batch_gpu)
    print("training_loop kwargs:", kwargs, flush=True)
    start = time.time()
    run(**kwargs)
    seconds = time.time() - start
    print(f"trained {args.kimg} kimg in {seconds:.0f} s: {args.kimg * 1000 / seconds:.1f} img/s "
          f"(with setup)", flush=True)
    if args.num_images:
        write_images(torch, snapshots[-1]["G_ema"], os.path.join(args.run_dir, "images"),
                     args.num_images)
        print(f"wrote {args.num_images} images to {args.run_dir}/images", flush=True)


if __name__ == "__main__":
    main()
