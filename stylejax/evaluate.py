"""Score a trained run, an official network file, or any folder of images, with FID / KID.

    python -m stylejax.evaluate --workdir DIR [--metrics fid_digits,kid_digits]
        [--step N | --step best | --all-steps] [--num-samples N]
    python -m stylejax.evaluate --network FILE.pkl --dataset NAME [--metrics fid,kid
        --inception inception-2015-12-05.tgz] [--num-samples N]
    python -m stylejax.evaluate --images FOLDER_OR_ZIP [--dataset digits] [--split train]
        [--metrics fid,kid --inception inception-2015-12-05.tgz]

With --workdir, G_ema of the latest checkpoint (or --step N, or the best checkpoint by the run's
first metric with --step best, or every checkpoint with --all-steps) generates the run's
config.metrics_num_samples images, scored against the run's dataset exactly as during training.
With --network, G_ema of an official stylegan2-ada-pytorch or TF StyleGAN2 .pkl (read without
running any code stored in it) generates 50000 images (--num-samples) scored against --dataset.
With --images, the images of a folder (or zip) are scored against a dataset split, so samples
of other systems are compared on the same footing. Each result is one JSON line on stdout, e.g.
{"step": 800, "fid_digits": 3.21, "kid_digits": 0.0042}.
Metrics default to the run's config.metrics, or for --images to the digits metrics on digits
datasets and fid,kid elsewhere.
"""

import argparse
import json
import os
import sys

import ml_collections

from stylejax.configs import base_config
from stylejax.data.builder import default_data_dir
from stylejax.data.digits import digits_name
from stylejax.data.prepare import cli_logging
from stylejax.host_memory import keep_freed_host_memory
from stylejax.metrics.evaluator import Evaluator
from stylejax.metrics.folder import image_batches
from stylejax.steps import parse_step


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stylejax.evaluate",
        description="FID / KID of a training run's checkpoints or of a folder of images.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--workdir", help="a training run's directory (python -m stylejax.main "
                                        "--workdir)")
    what.add_argument("--network", metavar="FILE.pkl",
                      help="an official network file to score against --dataset")
    what.add_argument("--images", help="a folder (or .zip) of images to score against --dataset")
    parser.add_argument("--metrics", help="comma-separated: fid, kid (Inception), fid_digits, "
                                          "kid_digits (digits datasets)")
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument("--step", type=parse_step, metavar="N|best",
                       help="the checkpoint step, or best: the best by the run's first metric "
                            "(default: the latest)")
    steps.add_argument("--all-steps", action="store_true", help="every checkpoint of the run")
    parser.add_argument("--dataset", default="digits", help="with --network or --images: the "
                                                            "dataset to compare with (default digits)")
    parser.add_argument("--split", default=None, help="the dataset split compared with (default: "
                                                      "the run's config.metrics_split, train)")
    parser.add_argument("--data-dir", default=None, help="where datasets live (default: the run's "
                                                         "data_dir, else $STYLEJAX_DATA_DIR ...)")
    parser.add_argument("--inception", default=None,
                        help="inception-2015-12-05.tgz or its classify_image_graph_def.pb, for "
                             "fid / kid")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="generated images per checkpoint (default: the run's "
                             "config.metrics_num_samples)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per global batch")
    parser.add_argument("--cache-dir", default=None,
                        help="dataset statistics cache (default $STYLEJAX_CACHE_DIR or "
                             "~/.cache/stylejax)")
    return parser


def _config(args: argparse.Namespace, config: ml_collections.ConfigDict,
            dataset: str) -> ml_collections.ConfigDict:
    """The run's (or the base) config with the command line's choices."""
    values = config.to_dict()
    values["dataset"] = dataset
    if args.metrics is not None:
        values["metrics"] = args.metrics
    elif not values["metrics"]:
        values["metrics"] = "fid_digits,kid_digits" if digits_name(dataset) else "fid,kid"
    for key, value in (("metrics_split", args.split), ("data_dir", args.data_dir),
                       ("inception_path", args.inception),
                       ("metrics_num_samples", args.num_samples),
                       ("metrics_batch_size", args.batch_size),
                       ("metrics_cache_dir", args.cache_dir)):
        if value is not None:
            values[key] = value
    return ml_collections.ConfigDict(values)


def _evaluate_run(args: argparse.Namespace) -> None:
    from stylejax.checkpoints import Checkpoints, load_generator, read_config
    from stylejax.train.programs import make_mesh

    run_config = read_config(args.workdir)
    if args.all_steps:
        with Checkpoints(args.workdir, read_only=True) as checkpoints:
            steps = checkpoints.steps
    else:
        steps = [args.step]
    evaluator = None
    for step in steps:
        trained = load_generator(args.workdir, step)
        if evaluator is None:
            config = _config(args, run_config, run_config.dataset)
            evaluator = Evaluator(config, trained.G, make_mesh())
        results = evaluator(trained.variables, trained.step)
        print(json.dumps({"step": trained.step, **results}), flush=True)


def _evaluate_network(args: argparse.Namespace) -> None:
    from stylejax.checkpoints import load_generator
    from stylejax.train.programs import make_mesh

    if args.step is not None or args.all_steps:
        raise ValueError("--step and --all-steps pick a training run's checkpoints; a --network "
                         "file has one generator: drop them")
    trained = load_generator(args.network)
    evaluator = Evaluator(_config(args, trained.config, args.dataset), trained.G, make_mesh())
    print(json.dumps({"network": args.network, **evaluator(trained.variables)}), flush=True)


def _evaluate_images(args: argparse.Namespace) -> None:
    from stylejax.train.programs import make_mesh

    if not os.path.exists(args.images):
        raise ValueError(f"--images {args.images} does not exist; give a folder or a .zip of images")
    config = _config(args, base_config(), args.dataset)
    evaluator = Evaluator(config, None, make_mesh())
    batches = image_batches(args.images, evaluator.resolution, evaluator.channels,
                            evaluator.batch_size, config.data_dir or default_data_dir())
    results = evaluator.score_images(batches)
    print(json.dumps({"images": args.images, **results}), flush=True)


def main(argv: list[str] | None = None) -> int:
    """The CLI: results on stdout; one line on stderr and exit status 2 for any bad input, as every
    stylejax CLI."""
    args = _parser().parse_args(argv)
    try:
        with cli_logging():  # progress and notes as 'LEVEL: message'
            if args.images:
                _evaluate_images(args)
            elif args.network:
                _evaluate_network(args)
            else:
                _evaluate_run(args)
    except ValueError as e:  # DatasetError, MetricsError, CheckpointError, ConfigError
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    keep_freed_host_memory()
    sys.exit(main())
