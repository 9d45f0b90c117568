"""Sample a trained generator: python -m stylejax.sample MODE (--workdir DIR | --network FILE.pkl)
--outdir OUT [options].

  seeds        one PNG per seed                       --seeds 0-7,42
  grid         the seeds in one PNG                   --seeds 0-31 [--cols 8]
  mixing       the paper's style-mixing figure        --row_seeds 85,100 --col_seeds 55,821
                                                      [--styles coarse|middle|fine|0-3 --degree 1]
  blend        one row seed's --styles moved toward   --row_seeds 85 --col_seeds 55
               one column seed's, a degree a column   [--styles coarse --degrees 0,0.25,0.5,0.75,1]
  truncation   a row per seed, a column per psi       --seeds 0-3 [--psis 1,0.7,0.5,0]
  interpolate  an animated GIF through the seeds      --seeds 0,1,2 [--frames 24 --fps 24]
  video        a looping MP4 or GIF, by --kind:       [--format mp4|gif --frames 24 --fps 24]
               walk_z, walk_w  through the seeds' z (great circles) or ws      --seeds 0-3
               morph       one band from column seed to column seed    --row_seeds 85
                           on the row seed                             --col_seeds 55,821 --styles
               truncation  psi through --psis and back                 --seeds 0 [--psis 1,0]
               blend       the band's degree through --degrees and     --row_seeds 85 --col_seeds 55
                           back                                        --styles [--degrees 0,1]

--workdir samples a training run: --step N or --step best picks its checkpoint (default: the
latest). --network samples an official network file (a stylegan2-ada-pytorch snapshot or a
TensorFlow StyleGAN or StyleGAN2 .pkl), read without running any code stored in it. Every mode takes
--noise_mode, --class (conditional generators) and --trunc_cutoff; all but truncation take
--trunc PSI; the figures take --upscale N (nearest, for small generators) and every mode --batch
B (images per jitted call). A seed's latent is the official generate.py's,
np.random.RandomState(seed).randn(z_dim).
"""

import math
import os
import sys

from absl import flags

from stylejax import cli, video
from stylejax.checkpoints import checkpoint_dir, load_generator
from stylejax.errors import UsageError
from stylejax.figures import (
    Renderer,
    blend_figure,
    check_degrees,
    style_layers,
    style_mixing_figure,
    truncation_sweep,
)
from stylejax.host_memory import keep_freed_host_memory
from stylejax.models.synthesis import NOISE_MODES
from stylejax.sampling import SEED_LIMIT, make_grid, parse_ranges, save_png, upscale
from stylejax.steps import parse_step

# Each mode's own flags: (required, optional). The flags above them apply to every mode.
MODE_FLAGS = {
    "seeds": (("seeds",), ("trunc",)),
    "grid": (("seeds",), ("trunc", "cols", "upscale")),
    "mixing": (("row_seeds", "col_seeds"), ("trunc", "styles", "degree", "upscale")),
    "blend": (("row_seeds", "col_seeds"), ("trunc", "styles", "degrees", "upscale")),
    "truncation": (("seeds",), ("psis", "upscale")),
    "interpolate": (("seeds",), ("trunc", "frames", "fps")),
    "video": ((), ("kind", "trunc", "frames", "fps", "format", "seeds", "row_seeds", "col_seeds",
                          "styles", "psis", "degrees", "upscale")),
}
# Each video --kind's keyframe flags (required) and the other flags it uses.
VIDEO_FLAGS = {"walk_z": (("seeds",), ("trunc",)), "walk_w": (("seeds",), ("trunc",)),
               "morph": (("row_seeds", "col_seeds"), ("styles", "trunc")),
               "truncation": (("seeds",), ("psis",)),
               "blend": (("row_seeds", "col_seeds"), ("styles", "degrees", "trunc"))}


def _seeds(text: str) -> list[int]:
    seeds = parse_ranges(text)
    if max(seeds) >= SEED_LIMIT:
        raise ValueError(f"seed {max(seeds)} is too large: seeds are 0..{SEED_LIMIT - 1}")
    return seeds


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number, e.g. 0.7")
    return value


def _floats(text: str) -> list[float]:
    try:
        return [_finite(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"bad list {text!r}: use finite numbers separated by commas, e.g. "
                         "1,0.7,0.5") from None


class _FiniteParser(flags.FloatParser):
    def parse(self, argument: str | float) -> float:
        return _finite(str(argument))


FLAGS = flags.FlagValues()
cli.define_generator_source(FLAGS)
flags.DEFINE_string("outdir", None, "where the pictures go (created)", flag_values=FLAGS)
flags.mark_flag_as_required("outdir", flag_values=FLAGS)
flags.DEFINE_string("step", None, "checkpoint step, or best: the best by the run's first metric "
                                  "(default: the latest)", flag_values=FLAGS)
flags.DEFINE_enum("noise_mode", "const", NOISE_MODES, "per-pixel noise: the constant buffers, "
                  "random (drawn from each image's seed) or none", flag_values=FLAGS)
flags.DEFINE_integer("class", None, "class label, for conditional generators", flag_values=FLAGS)
flags.DEFINE_integer("trunc_cutoff", None, "truncate only the first N ws (default: all)",
                     flag_values=FLAGS)
flags.DEFINE(_FiniteParser(), "trunc", 1.0, "truncation psi (default 1: none)", FLAGS)
cli.define_list("seeds", None, _seeds, "seeds", "e.g. 0-7,42", FLAGS)
cli.define_list("row_seeds", None, _seeds, "seeds", "mixing: sources of the other styles", FLAGS)
cli.define_list("col_seeds", None, _seeds, "seeds", "mixing: sources of --styles", FLAGS)
flags.DEFINE_integer("cols", None, "grid: columns (default: a square)", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_string("styles", "coarse", "mixing: ws copied from the column seeds: coarse (0-3), "
                    "middle (4-7), fine (8 on) or explicit ones like 0-5", flag_values=FLAGS)
cli.define_list("psis", [1.0, 0.7, 0.5, 0.3, 0.0], _floats, "psis", "truncation: one column each",
                FLAGS)
flags.DEFINE(_FiniteParser(), "degree", 1.0, "mixing: how far the --styles move toward the column "
             "seeds', 0 (not at all) to 1 (copied, the paper's figure)", FLAGS)
cli.define_list("degrees", [0.0, 0.25, 0.5, 0.75, 1.0], _floats, "degrees",
                "blend: one column each, from 0 (the row seed) to 1 (copied styles)", FLAGS)
flags.DEFINE_integer("upscale", 1, "figures: each pixel drawn as N x N (nearest), for small "
                     "generators", lower_bound=1, upper_bound=64, flag_values=FLAGS)
flags.DEFINE_integer("batch", 8, "images per jitted call", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("frames", 24, "interpolate, video: frames from each seed (keyframe) to the next",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_float("fps", 24.0, "interpolate, video: frames a second", lower_bound=1e-3,
                   flag_values=FLAGS)
flags.DEFINE_enum("kind", "walk_z", video.KINDS, "video: what moves", flag_values=FLAGS)
flags.DEFINE_enum("format", "mp4", video.FORMATS, "video: H.264 MP4 or looping GIF", flag_values=FLAGS)


def _check_mode(positional: list[str]) -> str:
    """The one MODE argument, with its required flags given and no other mode's."""
    if len(positional) != 1 or positional[0] not in MODE_FLAGS:
        raise UsageError(f"give one MODE of {', '.join(MODE_FLAGS)} before the flags, got "
                         f"{' '.join(positional) or 'none'}")
    mode = positional[0]
    required, optional = MODE_FLAGS[mode]
    for name in required:
        if FLAGS[name].value is None:
            raise UsageError(f"{mode} needs --{name}, e.g. --{name}=0-3")
    own = {name for r, o in MODE_FLAGS.values() for name in r + o}
    for name in sorted(own - set(required) - set(optional)):
        if FLAGS[name].present:
            raise UsageError(f"--{name} does not apply to {mode}; drop it")
    return mode


def _inside(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def sample(positional: list[str]) -> None:
    """Draws what the command line asks for and prints the files written."""
    mode = _check_mode(positional)
    args = FLAGS
    step = parse_step(args.step)
    for best in (False, True):
        if args.workdir and _inside(args.outdir, checkpoint_dir(args.workdir, best)):
            raise UsageError(f"--outdir {args.outdir} is inside the checkpoint directory "
                             f"{checkpoint_dir(args.workdir, best)}, which sampling never writes "
                             "to; choose another --outdir")
    if args.network and os.path.isdir(args.network):
        raise UsageError(f"--network {args.network} is a directory; a training run is sampled with "
                         "--workdir")
    if mode == "blend" and (len(args.row_seeds), len(args.col_seeds)) != (1, 1):
        raise UsageError("blend takes one --row_seeds and one --col_seeds, e.g. --row_seeds 85 "
                         "--col_seeds 55")
    check_degrees([args.degree, *args.degrees])
    if mode == "video":
        needed, used = VIDEO_FLAGS[args.kind]
        if any(FLAGS[name].value is None for name in needed):
            raise UsageError(f"video --kind {args.kind} needs --{' and --'.join(needed)}")
        for name in sorted({n for flags_of_kind in VIDEO_FLAGS.values() for n in sum(flags_of_kind, ())}):
            if name not in needed + used and FLAGS[name].present:
                raise UsageError(f"--{name} does not apply to video --kind {args.kind}; drop it")
        if len(args.row_seeds or [0]) != 1 or (args.kind == "blend" and len(args.col_seeds) != 1):
            raise UsageError(f"video --kind {args.kind} takes one --row_seeds"
                             f"{' and one --col_seeds' if args.kind == 'blend' else ''}, e.g. 85")
        if args.kind == "truncation" and len(args.seeds) != 1:
            raise UsageError("video --kind truncation takes one --seeds, e.g. 0")
    if mode == "interpolate" and len(args.seeds) < 2:
        raise UsageError("interpolate needs at least two --seeds, e.g. 0,1,2")
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise UsageError(f"--outdir {args.outdir} is a file; give a directory (made if missing)")
    trained = load_generator(args.workdir or args.network, step)
    renderer = Renderer(trained.G, trained.variables, noise_mode=args.noise_mode,
                        class_index=args["class"].value, psi=args.trunc, cutoff=args.trunc_cutoff,
                        batch=args.batch)
    layers = style_layers(args.styles, trained.G.num_ws) if mode in ("mixing", "blend", "video") else None
    try:
        os.makedirs(args.outdir, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --outdir {args.outdir}: {e.strerror}; choose a writable "
                         "location") from None
    print("\n".join(_draw(mode, renderer, layers)))


def _draw(mode: str, renderer: Renderer, layers: list[int] | None) -> list[str]:
    """Writes the pictures of `mode` into --outdir; returns their paths."""
    args = FLAGS

    def out(name: str) -> str:
        return os.path.join(args.outdir, name)

    if mode == "seeds":
        paths = [out(f"seed{s:04d}.png") for s in args.seeds]
        for image, path in zip(renderer.seed_images(args.seeds), paths, strict=True):
            save_png(image, path)
        return paths
    if mode == "grid":
        images = renderer.seed_images(args.seeds)
        picture = make_grid(images, args.cols or math.ceil(math.sqrt(len(images))))
        name = "grid.png"
    elif mode == "mixing":
        picture = style_mixing_figure(renderer, args.row_seeds, args.col_seeds, layers, args.degree)
        name = "stylemix.png"
    elif mode == "blend":
        picture = blend_figure(renderer, args.row_seeds[0], args.col_seeds[0], layers, args.degrees)
        name = "blend.png"
    elif mode == "truncation":
        picture = truncation_sweep(renderer, args.seeds, args.psis)
        name = "truncation.png"
    elif mode in ("video", "interpolate"):
        # interpolate: the GIF of a walk through the seeds' ws, as before videos came
        kind, fmt = (args.kind, args.format) if mode == "video" else ("walk_w", "gif")
        path = out(f"{kind}.{fmt}" if mode == "video" else "interpolation.gif")
        animation = _animation(renderer, kind, layers)
        video.write_video(path, video.frame_batches(renderer, animation, args.frames, args.upscale),
                          animation.num_keys * args.frames, args.fps)
        return [path]
    save_png(upscale(picture, args.upscale), out(name))
    return [out(name)]


def _animation(renderer: Renderer, kind: str, layers: list[int]) -> video.Animation:
    args = FLAGS
    if kind == "walk_z":
        return video.latent_walk(renderer, args.seeds)
    if kind == "walk_w":
        return video.style_walk(renderer, args.seeds)
    if kind == "morph":
        return video.style_morph(renderer, args.row_seeds[0], args.col_seeds, layers)
    if kind == "truncation":
        return video.truncation_sweep(renderer, args.seeds[0], args.psis)
    return video.degree_blend(renderer, args.row_seeds[0], args.col_seeds[0], layers, args.degrees)


def main(argv: list[str] | None = None) -> int:
    """The CLI on `argv` (sys.argv[1:] when None); returns the exit status."""
    cli.quiet_orbax()
    return cli.run(sample, FLAGS, __doc__, ["stylejax.sample", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    keep_freed_host_memory()
    sys.exit(main())
