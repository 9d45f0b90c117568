"""Project images into a generator's W space: find the w (and noise maps) that make each target.

    python -m stylejax.project (--workdir DIR [--step N] | --network FILE.pkl) --target IMG[,IMG...]
        --outdir OUT --vgg16 vgg16-397923af.pth --lpips vgg.pth [--num_steps 1000] [--seed 303]

The official projector's schedule (stylegan2-ada-pytorch projector.py): 1000 steps of Adam on
LPIPS with a learning-rate ramp, noise added to w that fades out, and the noise maps regularised;
the targets are optimised together in one compiled loop. Each target is centre-cropped to a
square and resized to the generator's resolution. Per target NAME, OUT gets NAME_projected_w.npz
(`w` [1, num_ws, w_dim] as the official file, `ws` every step's w, `distances` each step's
LPIPS), NAME_target.png, NAME_proj.png, NAME_side_by_side.png (target | projection) and, unless
--nosave_video, NAME_proj.mp4 (target | projection at each step). The LPIPS weights are the
files users download: torchvision's VGG16 and the LPIPS project's v0.1 heads.

--attribute tells whether the network made each target: a network reproduces its own images
almost exactly and real photographs only roughly (StyleGAN2 paper, section 5). It projects
--calibration of the network's own images (seeds 0, 1, ...) and as many real ones (the first
batch of --dataset's --split) once, caches their distances (keyed by the network's weights, the
schedule and the data), and prints one JSON line per target: its LPIPS distance, the threshold
that best separates the two calibration sets with its accuracy, where the distance falls in
each, and the verdict.
"""

import hashlib
import json
import os
import sys

import jax
import numpy as np
from absl import flags
from PIL import Image

from stylejax import cli, video
from stylejax.checkpoints import TrainedGenerator, load_generator
from stylejax.data.pipeline import InputPipeline
from stylejax.errors import UsageError
from stylejax.files import write_atomically
from stylejax.host_memory import keep_freed_host_memory
from stylejax.metrics.features import default_cache_dir
from stylejax.metrics.vgg import LPIPS
from stylejax.metrics.vgg_weights import load_lpips
from stylejax.projection import Projection, Projector, Schedule, attribution
from stylejax.sampling import save_png, to_uint8, z_from_seeds
from stylejax.steps import parse_step

FLAGS = flags.FlagValues()
cli.define_generator_source(FLAGS)
flags.DEFINE_string("step", None, "with --workdir: the checkpoint step, or best (default: the "
                                  "latest)", flag_values=FLAGS)
flags.DEFINE_list("target", None, "the images to project (comma-separated), any size: centre-"
                                  "cropped to a square and resized to the generator's",
                  flag_values=FLAGS)
flags.DEFINE_string("outdir", None, "where the results go (created)", flag_values=FLAGS)
flags.mark_flags_as_required(["target", "outdir"], flag_values=FLAGS)
flags.DEFINE_string("vgg16", None, "torchvision's vgg16-397923af.pth", flag_values=FLAGS)
flags.DEFINE_string("lpips", None, "the LPIPS v0.1 heads vgg.pth", flag_values=FLAGS)
flags.DEFINE_integer("num_steps", Schedule.num_steps, "optimisation steps", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_integer("seed", 303, "the noise maps' and w noise's draws", flag_values=FLAGS)
flags.DEFINE_bool("save_video", True, "write NAME_proj.mp4 of the optimisation", flag_values=FLAGS)
flags.DEFINE_float("fps", 10.0, "the video's frames a second", lower_bound=1e-3, flag_values=FLAGS)
flags.DEFINE_bool("attribute", False, "tell whether the network made each target, against "
                  "calibration projections of its own and of --dataset's images", flag_values=FLAGS)
flags.DEFINE_string("dataset", None, "--attribute: the real images to calibrate with",
                    flag_values=FLAGS)
flags.DEFINE_string("split", "test", "--attribute: the --dataset split", flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "where datasets live (default $STYLEJAX_DATA_DIR ...)",
                    flag_values=FLAGS)
flags.DEFINE_integer("calibration", 100, "--attribute: generated and real images projected to "
                     "calibrate", lower_bound=2, flag_values=FLAGS)
flags.DEFINE_string("cache_dir", None, "--attribute: the calibration cache (default "
                                       "$STYLEJAX_CACHE_DIR or ~/.cache/stylejax)", flag_values=FLAGS)
VIDEO_BATCH = 16  # steps rendered per jitted call


def open_target(path: str) -> Image.Image:
    """The image at `path`, read into memory."""
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, ValueError) as e:
        raise UsageError(f"--target {path} is not a readable image ({e}); give PNG or JPEG "
                         "files") from None


def fit_target(image: Image.Image, resolution: int, channels: int) -> np.ndarray:
    """The image centre-cropped to a square and resized (Lanczos) to resolution, as
    [resolution, resolution, channels] floats in [-1, 1]."""
    image = image.convert("L" if channels == 1 else "RGB")
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    pixels = np.asarray(image.resize((resolution, resolution), Image.LANCZOS), np.float32)
    return (pixels.reshape(resolution, resolution, channels) / 127.5 - 1).astype(np.float32)


def _side_by_side(target: np.ndarray, images: np.ndarray) -> np.ndarray:
    """[N, R, 2R, C] uint8: the target left of each image."""
    left = np.broadcast_to(to_uint8(target), images.shape)
    return np.concatenate([left, to_uint8(images)], axis=2)


def _write(projector: Projector, projection: Projection, target: np.ndarray, stem: str) -> list[str]:
    out = lambda suffix: os.path.join(FLAGS.outdir, f"{stem}_{suffix}")  # noqa: E731
    G = projector.G
    final = projector.render(projection)
    w = np.broadcast_to(projection.ws[-1], (1, G.num_ws, G.w_dim))
    write_atomically(out("projected_w.npz"), lambda f: np.savez(
        f, w=w, ws=projection.ws, distances=projection.distances))
    save_png(to_uint8(target), out("target.png"))
    save_png(to_uint8(final[0]), out("proj.png"))
    save_png(_side_by_side(target, final)[0], out("side_by_side.png"))
    paths = [out(s) for s in ("projected_w.npz", "target.png", "proj.png", "side_by_side.png")]
    if FLAGS.save_video:
        steps = len(projection.ws)
        frames = (_side_by_side(target, projector.render(projection, np.arange(s, min(s + VIDEO_BATCH,
                                                                                      steps))))
                  for s in range(0, steps, VIDEO_BATCH))
        video.write_video(out("proj.mp4"), frames, steps, FLAGS.fps)
        paths.append(out("proj.mp4"))
    return paths


def _calibration_path(trained: TrainedGenerator, lpips_fingerprint: str) -> str:
    """The cache file of a calibration: the network's weights, the schedule, the data."""
    digest = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(trained.variables):
        digest.update(np.asarray(leaf).tobytes())
    args = FLAGS
    digest.update(json.dumps([args.num_steps, args.seed, args.calibration, args.dataset,
                              args.split, lpips_fingerprint]).encode())
    return os.path.join(args.cache_dir or default_cache_dir(),
                        f"attribution_{digest.hexdigest()[:16]}.npz")


def _calibration_images(trained: TrainedGenerator) -> np.ndarray:
    """The network's images of seeds 0 ... N-1 (random noise) and N real images."""
    G, n = trained.G, FLAGS.calibration
    data = InputPipeline(FLAGS.dataset, global_batch_size=n, seed=0, split=FLAGS.split,
                         data_dir=FLAGS.data_dir, max_images=n)
    if (data.resolution, data.num_channels) != (G.resolution, G.img_channels):
        raise UsageError(f"--dataset {FLAGS.dataset} has {data.resolution}x{data.resolution} "
                         f"images with {data.num_channels} channels, the generator makes "
                         f"{G.resolution}x{G.resolution} with {G.img_channels}; calibrate with a "
                         "dataset at the generator's size")
    if data.num_examples < n:
        raise UsageError(f"--dataset {FLAGS.dataset}[{FLAGS.split}] has {data.num_examples} "
                         f"images, fewer than --calibration {n}")
    generated = jax.jit(lambda v, z, key: G.apply(v, z, noise_mode="random", rngs={"noise": key}))(
        trained.variables, z_from_seeds(range(n), G.z_dim), jax.random.key(FLAGS.seed))
    return np.concatenate([np.asarray(generated), data.batch(0)["image"]])


def project(positional: list[str]) -> None:
    """Projects the targets and prints the files written."""
    if positional:
        raise UsageError(f"unexpected arguments {' '.join(positional)!r}: every option is a --flag")
    args = FLAGS
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise UsageError(f"--outdir {args.outdir} is a file; give a directory (made if missing)")
    if args.attribute and not args.dataset:
        raise UsageError("--attribute calibrates with real images: name them with --dataset, "
                         "e.g. --dataset digits")
    stems = [os.path.splitext(os.path.basename(t))[0] for t in args.target]
    if len(set(stems)) != len(stems):
        raise UsageError("two --target files have the same name; their results would overwrite "
                         "each other: rename one")
    images = [open_target(t) for t in args.target]
    lpips_params, widths, lpips_fingerprint = load_lpips(args.vgg16, args.lpips)
    trained = load_generator(args.workdir or args.network, parse_step(args.step))
    G = trained.G
    if G.c_dim:
        raise UsageError("the projector needs an unconditional generator; this one takes "
                         f"{G.c_dim} classes")
    targets = np.stack([fit_target(i, G.resolution, G.img_channels) for i in images])
    try:
        os.makedirs(args.outdir, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --outdir {args.outdir}: {e.strerror}; choose a writable "
                         "location") from None
    calibration, cache = None, None
    if args.attribute:
        cache = _calibration_path(trained, lpips_fingerprint)
        if os.path.isfile(cache):
            with np.load(cache) as f:
                calibration = f["generated"], f["real"]
        else:  # projected with the targets, in one compiled loop
            targets = np.concatenate([targets, _calibration_images(trained)])
    with cli.readable_logging():
        projector = Projector(G, trained.variables, LPIPS(widths), lpips_params,
                              Schedule(num_steps=args.num_steps), seed=args.seed)
        projections = projector(targets)
    if args.attribute and calibration is None:
        n = args.calibration
        distances = np.array([p.distance for p in projections[len(stems):]])
        calibration = distances[:n], distances[n:]
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        write_atomically(cache, lambda f: np.savez(f, generated=calibration[0],
                                                   real=calibration[1]))
    for projection, target, stem in zip(projections, targets, stems, strict=False):
        print("\n".join(_write(projector, projection, target, stem)), flush=True)
        if args.attribute:
            print(json.dumps({"target": stem, **attribution(projection.distance, *calibration)}),
                  flush=True)


def main(argv: list[str] | None = None) -> int:
    """The CLI on `argv` (sys.argv[1:] when None); returns the exit status."""
    cli.quiet_orbax()
    return cli.run(project, FLAGS, __doc__, ["stylejax.project", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    keep_freed_host_memory()
    sys.exit(main())
