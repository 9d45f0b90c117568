"""Score a trained run, an official network file, or any folder of images: FID / KID,
precision / recall, perceptual path length.

    python -m stylejax.evaluate --workdir DIR [--metrics fid_digits,kid_digits]
        [--step N | --step best | --all_steps] [--num_samples N]
    python -m stylejax.evaluate --network FILE.pkl --dataset NAME [--metrics fid,kid
        --inception inception-2015-12-05.tgz] [--num_samples N]
    python -m stylejax.evaluate --images FOLDER_OR_ZIP [--dataset digits] [--split train]
        [--metrics fid,kid --inception inception-2015-12-05.tgz]
    python -m stylejax.evaluate --workdir DIR --metrics ppl_wend,precision,recall
        --vgg16 vgg16-397923af.pth --lpips vgg.pth

With --workdir, G_ema of the latest checkpoint (or --step N, or the best checkpoint by the run's
first metric with --step best, or every checkpoint with --all_steps) generates the run's
config.metrics_num_samples images, scored against the run's dataset exactly as during training.
With --network, G_ema of an official stylegan2-ada-pytorch or TF StyleGAN2 .pkl (read without
running any code stored in it) generates 50000 images (--num_samples) scored against --dataset.
With --images, the images of a folder (or zip) are scored against a dataset split, so samples
of other systems are compared on the same footing. Each result is one JSON line on stdout, e.g.
{"step": 800, "fid_digits": 3.21, "kid_digits": 0.0042}.
Metrics default to the run's config.metrics, or for --images to the digits metrics on digits
datasets and fid,kid elsewhere.
"""

import json
import os
import sys

import ml_collections
from absl import flags

from stylejax import cli
from stylejax.checkpoints import Checkpoints, load_generator, read_config
from stylejax.configs import base_config
from stylejax.data.builder import default_data_dir
from stylejax.data.digits import digits_name
from stylejax.errors import UsageError
from stylejax.host_memory import keep_freed_host_memory
from stylejax.metrics.evaluator import Evaluator
from stylejax.metrics.folder import image_batches
from stylejax.steps import parse_step
from stylejax.train.programs import make_mesh

FLAGS = flags.FlagValues()
flags.DEFINE_string("workdir", None, "a training run's directory (python -m stylejax.main --workdir)",
                    flag_values=FLAGS)
flags.DEFINE_string("network", None, "an official network file (FILE.pkl) to score against --dataset",
                    flag_values=FLAGS)
flags.DEFINE_string("images", None, "a folder (or .zip) of images to score against --dataset",
                    flag_values=FLAGS)
flags.mark_flags_as_mutual_exclusive(["workdir", "network", "images"], required=True,
                                     flag_values=FLAGS)
flags.DEFINE_string("metrics", None, "comma-separated: fid, kid (Inception), fid_digits, kid_digits "
                                     "(digits datasets), precision, recall (VGG16), ppl_wend, "
                                     "ppl_zfull (LPIPS)", flag_values=FLAGS)
flags.DEFINE_string("step", None, "the checkpoint step, or best: the best by the run's first metric "
                                  "(default: the latest)", flag_values=FLAGS)
flags.DEFINE_bool("all_steps", False, "every checkpoint of the run", flag_values=FLAGS)
flags.DEFINE_string("dataset", "digits", "with --network or --images: the dataset to compare with",
                    flag_values=FLAGS)
flags.DEFINE_string("split", None, "the dataset split compared with (default: the run's "
                                   "config.metrics_split, train)", flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "where datasets live (default: the run's data_dir, else "
                                      "$STYLEJAX_DATA_DIR ...)", flag_values=FLAGS)
flags.DEFINE_string("inception", None, "inception-2015-12-05.tgz or its classify_image_graph_def.pb, "
                                       "for fid / kid", flag_values=FLAGS)
flags.DEFINE_string("vgg16", None, "torchvision's vgg16-397923af.pth, for precision, recall and the "
                                   "path lengths", flag_values=FLAGS)
flags.DEFINE_string("lpips", None, "the LPIPS v0.1 heads vgg.pth, for ppl_wend and ppl_zfull",
                    flag_values=FLAGS)
flags.DEFINE_integer("num_samples", None, "generated images per checkpoint (default: the run's "
                                          "config.metrics_num_samples)", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_integer("batch_size", None, "images per global batch", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_string("cache_dir", None, "dataset statistics cache (default $STYLEJAX_CACHE_DIR or "
                                       "~/.cache/stylejax)", flag_values=FLAGS)


def _config(args: flags.FlagValues, config: ml_collections.ConfigDict,
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
                       ("vgg16_path", args.vgg16), ("lpips_path", args.lpips),
                       ("metrics_num_samples", args.num_samples),
                       ("metrics_batch_size", args.batch_size),
                       ("metrics_cache_dir", args.cache_dir)):
        if value is not None:
            values[key] = value
    return ml_collections.ConfigDict(values)


def _evaluate_run(args: flags.FlagValues) -> None:
    if args.all_steps and args.step is not None:
        raise UsageError("--step and --all_steps both pick checkpoints: give one of them")
    run_config = read_config(args.workdir)
    if args.all_steps:
        with Checkpoints(args.workdir, read_only=True) as checkpoints:
            steps = checkpoints.steps
    else:
        steps = [parse_step(args.step)]
    evaluator = None
    for step in steps:
        trained = load_generator(args.workdir, step)
        if evaluator is None:
            config = _config(args, run_config, run_config.dataset)
            evaluator = Evaluator(config, trained.G, make_mesh())
        results = evaluator(trained.variables, trained.step)
        print(json.dumps({"step": trained.step, **results}), flush=True)


def _evaluate_network(args: flags.FlagValues) -> None:
    if args.step is not None or args.all_steps:
        raise UsageError("--step and --all_steps pick a training run's checkpoints; a --network "
                         "file has one generator: drop them")
    trained = load_generator(args.network)
    evaluator = Evaluator(_config(args, trained.config, args.dataset), trained.G, make_mesh())
    print(json.dumps({"network": args.network, **evaluator(trained.variables)}), flush=True)


def _evaluate_images(args: flags.FlagValues) -> None:

    if not os.path.exists(args.images):
        raise UsageError(f"--images {args.images} does not exist; give a folder or a .zip of images")
    config = _config(args, base_config(), args.dataset)
    evaluator = Evaluator(config, None, make_mesh())
    batches = image_batches(args.images, evaluator.resolution, evaluator.channels,
                            evaluator.batch_size, config.data_dir or default_data_dir())
    results = evaluator.score_images(batches)
    print(json.dumps({"images": args.images, **results}), flush=True)


def evaluate(positional: list[str]) -> None:
    """Scores what the flags name; one JSON line per result on stdout."""
    if positional:
        raise UsageError(f"unexpected arguments {' '.join(positional)!r}: every option is a --flag")
    with cli.readable_logging():
        if FLAGS.images:
            _evaluate_images(FLAGS)
        elif FLAGS.network:
            _evaluate_network(FLAGS)
        else:
            _evaluate_run(FLAGS)


def main(argv: list[str] | None = None) -> int:
    """The CLI on `argv` (sys.argv[1:] when None); returns the exit status."""
    cli.quiet_orbax()
    return cli.run(evaluate, FLAGS, __doc__, ["stylejax.evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    keep_freed_host_memory()
    sys.exit(main())
