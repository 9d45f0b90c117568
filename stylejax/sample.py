"""Sample a trained generator: python -m stylejax.sample MODE (--workdir DIR | --network FILE.pkl)
--outdir OUT [options].

  seeds        one PNG per seed                       --seeds 0-7,42
  grid         the seeds in one PNG                   --seeds 0-31 [--cols 8]
  mixing       the paper's style-mixing figure        --row-seeds 85,100 --col-seeds 55,821
                                                      [--styles coarse|middle|fine|0-3]
  truncation   a row per seed, a column per psi       --seeds 0-3 [--psis 1,0.7,0.5,0]
  interpolate  an animated GIF through the seeds      --seeds 0,1,2 [--frames 24 --fps 24]

--workdir samples a training run: --step N or --step best picks its checkpoint (default: the
latest). --network samples an official network file (a stylegan2-ada-pytorch snapshot or a
TensorFlow StyleGAN2 .pkl), read without running any code stored in it. Every mode takes
--noise-mode, --class (conditional generators) and --trunc-cutoff; all but truncation take
--trunc PSI. A seed's latent is the official generate.py's, np.random.RandomState(seed).randn(z_dim).
"""

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable

import numpy as np

from stylejax.checkpoints import checkpoint_dir, load_generator
from stylejax.figures import (
    Renderer,
    interpolation_frames,
    style_layers,
    style_mixing_figure,
    truncation_sweep,
)
from stylejax.host_memory import keep_freed_host_memory
from stylejax.models.synthesis import NOISE_MODES
from stylejax.sampling import make_grid, parse_ranges, save_gif, save_png
from stylejax.steps import parse_step

SEED_LIMIT = 2 ** 32  # numpy's RandomState takes seeds below this


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _seeds(text: str) -> list[int]:
    try:
        seeds = parse_ranges(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if max(seeds) >= SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed {max(seeds)} is too large: seeds are 0..{SEED_LIMIT - 1}")
    return seeds


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number, e.g. 0.7")
    return value


def _floats(text: str) -> list[float]:
    try:
        return [_finite(x) for x in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"bad list {text!r}: use finite numbers separated by "
                                         "commas, e.g. 1,0.7,0.5") from None


def _positive(kind: type) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {kind.__name__}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    source = common.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="the training run's --workdir")
    source.add_argument("--network", metavar="FILE.pkl",
                        help="an official network file (stylegan2-ada-pytorch or TF StyleGAN2)")
    common.add_argument("--outdir", required=True, help="where the pictures go (created)")
    common.add_argument("--step", type=parse_step, metavar="N|best",
                        help="checkpoint step, or best: the best by the run's first metric "
                             "(default: the latest)")
    common.add_argument("--noise-mode", choices=NOISE_MODES, default="const",
                        help="per-pixel noise: the constant buffers (default), random "
                             "(drawn from each image's seed) or none")
    common.add_argument("--class", dest="class_index", type=int, metavar="K",
                        help="class label, for conditional generators")
    common.add_argument("--trunc-cutoff", type=int, metavar="N",
                        help="truncate only the first N ws (default: all)")
    trunc = _Parser(add_help=False)
    trunc.add_argument("--trunc", type=_finite, default=1.0, metavar="PSI",
                       help="truncation psi (default 1: none)")

    parser = _Parser(prog="python -m stylejax.sample", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True, metavar="MODE")
    seeds = modes.add_parser("seeds", parents=[common, trunc], help="one PNG per seed")
    seeds.add_argument("--seeds", type=_seeds, required=True, help="e.g. 0-7,42")
    grid = modes.add_parser("grid", parents=[common, trunc], help="the seeds in one PNG")
    grid.add_argument("--seeds", type=_seeds, required=True, help="e.g. 0-31")
    grid.add_argument("--cols", type=_positive(int), help="columns (default: a square)")
    mixing = modes.add_parser("mixing", parents=[common, trunc], help="the style-mixing figure")
    mixing.add_argument("--row-seeds", type=_seeds, required=True, help="sources of the other styles")
    mixing.add_argument("--col-seeds", type=_seeds, required=True, help="sources of --styles")
    mixing.add_argument("--styles", default="coarse",
                        help="ws copied from the column seeds: coarse (0-3), middle (4-7), fine "
                             "(8 on) or explicit ones like 0-5 (default coarse)")
    sweep = modes.add_parser("truncation", parents=[common], help="a truncation psi sweep")
    sweep.add_argument("--seeds", type=_seeds, required=True, help="one row each")
    sweep.add_argument("--psis", type=_floats, default=[1.0, 0.7, 0.5, 0.3, 0.0],
                       help="one column each (default 1,0.7,0.5,0.3,0)")
    interp = modes.add_parser("interpolate", parents=[common, trunc],
                              help="an animated GIF looping through the seeds")
    interp.add_argument("--seeds", type=_seeds, required=True, help="at least two, e.g. 0,1,2")
    interp.add_argument("--frames", type=_positive(int), default=24, help="frames per seed (24)")
    interp.add_argument("--fps", type=_positive(float), default=24.0, help="frames a second (24)")
    return parser


def _inside(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def sample(args: argparse.Namespace) -> list[str]:
    """Draws what the parsed command line asks for; returns the files written."""
    for best in (False, True):
        if args.workdir and _inside(args.outdir, checkpoint_dir(args.workdir, best)):
            raise ValueError(f"--outdir {args.outdir} is inside the checkpoint directory "
                             f"{checkpoint_dir(args.workdir, best)}, which sampling never writes "
                             "to; choose another --outdir")
    if args.network and os.path.isdir(args.network):
        raise ValueError(f"--network {args.network} is a directory; a training run is sampled with "
                         "--workdir")
    if args.mode == "interpolate" and len(args.seeds) < 2:
        raise ValueError("interpolate needs at least two --seeds, e.g. 0,1,2")
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise ValueError(f"--outdir {args.outdir} is a file; give a directory (made if missing)")
    trained = load_generator(args.workdir or args.network, args.step)
    G = trained.G
    renderer = Renderer(G, trained.variables, noise_mode=args.noise_mode,
                        class_index=args.class_index, psi=getattr(args, "trunc", 1.0),
                        cutoff=args.trunc_cutoff)
    layers = style_layers(args.styles, G.num_ws) if args.mode == "mixing" else None
    try:
        os.makedirs(args.outdir, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create --outdir {args.outdir}: {e.strerror}; choose a writable "
                         "location") from None

    def out(name: str) -> str:
        return os.path.join(args.outdir, name)

    if args.mode == "seeds":
        paths = [out(f"seed{s:04d}.png") for s in args.seeds]
        for seed, path in zip(args.seeds, paths, strict=True):
            save_png(renderer.seed_image(seed), path)
        return paths
    if args.mode == "grid":
        images = np.stack([renderer.seed_image(s) for s in args.seeds])
        picture = make_grid(images, args.cols or math.ceil(math.sqrt(len(images))))
        name = "grid.png"
    elif args.mode == "mixing":
        picture = style_mixing_figure(renderer, args.row_seeds, args.col_seeds, layers)
        name = "stylemix.png"
    elif args.mode == "truncation":
        picture = truncation_sweep(renderer, args.seeds, args.psis)
        name = "truncation.png"
    else:
        save_gif(interpolation_frames(renderer, args.seeds, args.frames), out("interpolation.gif"),
                 args.fps)
        return [out("interpolation.gif")]
    save_png(picture, out(name))
    return [out(name)]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("absl", "asyncio"):  # orbax's notes: what goes wrong is raised and shown below
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        paths = sample(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    keep_freed_host_memory()
    sys.exit(main())
