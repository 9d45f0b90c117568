"""The benchmark's FLOPs are XLA's analysis of the lowered program, on every backend: checked
against the closed-form count of a convolution, also where jax analyses no lowered program (GPU
plugins), which the benchmark then hands to the CPU backend's analysis."""

import pathlib
import sys

import jax
import jax.numpy as jnp
import pytest
from jax import lax

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
from bench_train import model_flops  # noqa: E402


def _convolution(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("platform", ["cpu", "cuda"])
@pytest.mark.parametrize("lowered_analysis", [True, False])
def test_model_flops_of_a_convolution_are_its_multiply_adds_twice(monkeypatch, platform,
                                                                   lowered_analysis):
    x, w = jnp.ones((2, 10, 10, 4)), jnp.ones((3, 3, 4, 5))
    lowered = jax.jit(_convolution).trace(x, w).lower(lowering_platforms=(platform,))
    if not lowered_analysis:  # as a GPU plugin answers
        monkeypatch.setattr(type(lowered), "cost_analysis", lambda self: None)
    output_elements, taps = 2 * 8 * 8 * 5, 3 * 3 * 4
    assert model_flops(lowered) == 2 * output_elements * taps
