"""Computes the digits feature statistics of the dataset and of a tiny generator, and its
fid_digits / kid_digits, on however many devices XLA_FLAGS simulates; saves them to --out.

Run as a subprocess by tests/test_metrics_digits.py (once with 1 device, once with 8).
"""

import argparse

import jax
import numpy as np

from stylejax.metrics.evaluator import Evaluator
from stylejax.train.programs import make_mesh
from tests.metrics_helpers import metrics_config, tiny_generator


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--cache_dir", required=True)
    args = parser.parse_args()

    config = metrics_config(args.data_dir, args.cache_dir, num_samples=80, batch_size=32)
    config.metrics_split = "test"  # 180 images: the same code path as train, in less time
    G, variables = tiny_generator()
    evaluator = Evaluator(config, G, make_mesh())
    reference = evaluator.reference["digits"]
    generated = evaluator.generated_stats(variables)["digits"]
    results = evaluator(variables)
    np.savez(args.out, devices=jax.device_count(), ref_mean=reference.mean, ref_cov=reference.cov,
             gen_mean=generated.mean, gen_cov=generated.cov, **results)


if __name__ == "__main__":
    main()
