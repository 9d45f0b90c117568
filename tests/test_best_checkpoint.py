"""The best checkpoint by the first metric: kept while the newest checkpoints rotate, still counted
after a resume, read by `--step best`; and metrics.jsonl holding each step once. The metrics
here are scripted values (the real ones are tested in test_metrics_*; a real training run with
evaluation is in test_resume)."""

import json
import os
import re

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from stylejax import evaluate, sample
from stylejax.checkpoints import BestCheckpoint, Checkpoints, load_generator
from stylejax.networks import build_networks
from stylejax.sampling import to_uint8, z_from_seeds
from stylejax.train import evaluation
from stylejax.train.evaluation import PeriodicEvaluation, forget_after
from stylejax.train.loop import write_config
from tests.checkpoint_helpers import assert_bitwise_equal, flat_leaves, snapshot
from tests.train_helpers import tiny_config

SIZES = {"c_dim": 0, "img_channels": 3}
FID = {1: 5.0, 2: 1.5, 3: 4.0, 4: 3.0, 5: 2.0, 6: 6.0}  # the best at step 2


def tree(step: int) -> dict:
    return {"w": jnp.full((3,), step, jnp.float32)}


def abstract(tree_: dict) -> dict:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                                  tree_)


def results(fid: float) -> dict[str, float]:
    """kid ranks the steps the other way round: only the first metric may choose."""
    return {"fid_digits": fid, "kid_digits": -fid}


def listing(path) -> list[str]:
    return sorted(os.listdir(path))


def test_the_best_survives_the_rotation_of_the_newest(tmp_path):
    kept = []
    with (Checkpoints(str(tmp_path), every_steps=1, keep=2, metadata=SIZES) as regular,
          BestCheckpoint(str(tmp_path), "fid_digits", SIZES) as best):
        for step, fid in FID.items():
            regular.save(step, tree(step))
            kept.append(best.offer(step, tree(step), results(fid)))
    assert kept == [True, True, False, False, False, False]
    assert listing(tmp_path / "checkpoints") == ["5", "6"]
    assert listing(tmp_path / "checkpoints_best") == ["2"]
    with Checkpoints(str(tmp_path), read_only=True, best_by="fid_digits") as stored:
        assert stored.resolve_step() == 2
        assert stored.metrics(2) == results(FID[2])
        assert_bitwise_equal(flat_leaves(stored.restore(abstract(tree(0)))), flat_leaves(tree(2)))


def test_a_resumed_run_keeps_counting_the_best_it_had(tmp_path):
    with BestCheckpoint(str(tmp_path), "fid_digits", SIZES) as best:
        best.offer(4, tree(4), results(2.0))
    with BestCheckpoint(str(tmp_path), "fid_digits", SIZES) as best:
        assert (best.step, best.value) == (4, 2.0)
        assert not best.offer(5, tree(5), results(2.5))  # worse than before the resume
        assert not best.offer(4, tree(44), results(1.0))  # step 4 evaluated again: kept as first saved
        # Resumed from before the kept step: a better evaluation at a lower step replaces it.
        assert best.offer(3, tree(3), results(1.0))
    assert listing(tmp_path / "checkpoints_best") == ["3"]
    with Checkpoints(str(tmp_path), read_only=True, best_by="fid_digits") as stored:
        assert_bitwise_equal(flat_leaves(stored.restore(abstract(tree(0)))), flat_leaves(tree(3)))


def test_another_first_metric_starts_the_best_afresh(tmp_path):
    with BestCheckpoint(str(tmp_path), "fid_digits", SIZES) as best:
        best.offer(2, tree(2), {"fid_digits": 1.0})
    with BestCheckpoint(str(tmp_path), "kid_digits", SIZES) as best:
        assert best.step is None  # step 2 has no kid_digits
        assert best.offer(6, tree(6), results(9.0))
    assert listing(tmp_path / "checkpoints_best") == ["6"]


def test_metrics_file_keeps_each_step_up_to_the_resumed_one_once(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "fid": f}) for s, f in [(1, 5.0), (2, 4.0), (3, 3.0), (3, 2.5),
                                                            (4, 2.0)]]
    path.write_text("\n".join(lines) + '\n{"step": 5, "fi')  # the last write was cut short
    assert forget_after(str(path), 3) == {1, 2, 3}
    assert path.read_text() == "\n".join(lines[:2] + [lines[3]]) + "\n"  # step 3's newest line
    inode = os.stat(path).st_ino
    assert forget_after(str(path), 3) == {1, 2, 3}
    assert os.stat(path).st_ino == inode  # nothing to change: not rewritten
    assert forget_after(str(tmp_path / "none.jsonl"), 3) == set()
    assert not (tmp_path / "none.jsonl").exists()


@flax.struct.dataclass
class Weights:
    """What PeriodicEvaluation needs of a train state: its step and G_ema's variables."""

    step: jnp.ndarray
    ema: jnp.ndarray

    def generator_variables(self, ema: bool = True) -> dict:
        return {"params": self.ema}


class ScriptedEvaluator:
    """Stands in for Evaluator: FID[step] for the weights of step `step`, and the steps scored."""

    scored: list[int] = []

    def __init__(self, config, G, mesh, data_dir=None):
        pass

    def __call__(self, variables: dict, step: int) -> dict[str, float]:
        assert float(variables["params"][0]) == step
        self.scored.append(step)
        return results(FID[step])


class Writer:
    def __init__(self):
        self.scalars = {}

    def write_scalars(self, step: int, scalars: dict) -> None:
        self.scalars[step] = scalars


def weights(step: int) -> Weights:
    return Weights(step=jnp.asarray(step), ema=jnp.full((2,), step, jnp.float32))


@pytest.mark.parametrize("start, recorded, scored", [
    (4, [1, 2, 3], [4]),  # died evaluating step 4, after its checkpoint: evaluated on resuming
    (4, [1, 2, 3, 4], []),  # step 4's evaluation is in the file
    (3, [1, 2], []),  # step 3 is not an evaluation step (every 2)
    (6, [2, 4], [6]),  # the end of the run is always evaluated
])
def test_resuming_evaluates_the_step_whose_evaluation_was_lost(tmp_path, monkeypatch, start, recorded,
                                                                 scored):
    monkeypatch.setattr(evaluation, "Evaluator", ScriptedEvaluator)
    monkeypatch.setattr(ScriptedEvaluator, "scored", [])
    stale = {"step": start + 1, **results(0.5)}  # evaluated before the run died: dropped
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, **results(FID[s])}) + "\n"
                                                    for s in recorded) + json.dumps(stale) + "\n")
    config = tiny_config()
    config.update(metrics=("fid_digits", "kid_digits"), eval_every_steps=2, num_train_steps=6)
    writer = Writer()
    with PeriodicEvaluation(config, None, None, str(tmp_path), start, SIZES) as periodic:
        periodic.catch_up(weights(start), writer)
    assert ScriptedEvaluator.scored == scored
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == recorded + scored
    assert sorted(writer.scalars) == scored
    assert listing(tmp_path / "checkpoints_best") == [str(s) for s in scored]


# --- --step best in python -m stylejax.sample and python -m stylejax.evaluate ---------------------


def generator_state(G, seed: int) -> dict:
    """The arrays of a train state that sampling reads, drawn by numpy (no compilation)."""
    shapes = jax.eval_shape(G.init, {"params": jax.random.key(0), "noise": jax.random.key(0)},
                            jnp.zeros((1, G.z_dim)))
    rng = np.random.default_rng(seed)
    variables = jax.tree_util.tree_map(lambda s: rng.normal(size=s.shape).astype(s.dtype), shapes)
    return {"ema_params": variables["params"], "g_stats": variables["stats"],
            "noise_consts": variables["noise_consts"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run directory with metrics whose best checkpoint (step 6) is not a regular one (step 10)."""
    workdir = tmp_path_factory.mktemp("run")
    config = tiny_config()
    config.metrics = ("fid_digits", "kid_digits")
    write_config(config, str(workdir))
    G, _ = build_networks(config, 0, 3)
    best = generator_state(G, seed=1)
    with Checkpoints(str(workdir), metadata=SIZES) as regular:
        regular.save(10, generator_state(G, seed=2), force=True)
    with BestCheckpoint(str(workdir), "fid_digits", SIZES) as kept:
        assert kept.offer(6, best, results(1.0))
    return workdir, G, {"params": best["ema_params"], "stats": best["g_stats"],
                        "noise_consts": best["noise_consts"]}


def render(G, variables, seed: int) -> np.ndarray:
    ws = G.apply(variables, jnp.asarray(z_from_seeds([seed], G.z_dim)), method=G.map_latents)
    return to_uint8(G.apply(variables, ws, "const", method=G.synthesize))[0]


def test_sample_step_best_draws_the_best_generator(run, tmp_path):
    workdir, G, variables = run
    trained = load_generator(str(workdir), "best")
    assert trained.step == 6
    assert_bitwise_equal(flat_leaves(trained.variables), flat_leaves(variables))
    assert load_generator(str(workdir)).step == 10  # the latest is another
    before = snapshot(workdir)
    assert sample.main(["seeds", "--workdir", str(workdir), "--outdir", str(tmp_path), "--seeds", "3",
                        "--step", "best"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "seed0003.png")),
                                  render(G, variables, 3))
    assert snapshot(workdir) == before


def test_evaluate_step_best_scores_the_best_generator(run, monkeypatch, capsys):
    workdir, _, variables = run
    expected = flat_leaves(variables)

    class Recorder:
        def __init__(self, config, G, mesh, data_dir=None):
            pass

        def __call__(self, scored: dict, step: int) -> dict[str, float]:
            assert_bitwise_equal(flat_leaves(scored), expected)
            return {"fid_digits": 1.25}

    monkeypatch.setattr(evaluate, "Evaluator", Recorder)
    assert evaluate.main(["--workdir", str(workdir), "--step", "best"]) == 0
    assert json.loads(capsys.readouterr().out) == {"step": 6, "fid_digits": 1.25}


def without_best(workdir, tmp_path, metrics: bool):
    """A run directory like `workdir` without its best checkpoint, trained with or without metrics."""
    config = json.loads((workdir / "config.json").read_text())
    config["metrics"] = config["metrics"] if metrics else []
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.json").write_text(json.dumps(config))
    os.symlink(workdir / "checkpoints", copy / "checkpoints")
    return copy


@pytest.mark.parametrize("metrics, message", [
    (True, r"no best checkpoint in \S+/checkpoints_best: training keeps one from its first evaluation "
           r"on \(--config.metrics, every --config.eval_every_steps and at the end\); train with "
           r"metrics, or use --step N or the latest checkpoint \(no --step\)"),
    (False, r"the run in \S+ evaluates no metrics \(its config.metrics is empty\), so it keeps no "
            r"best checkpoint; use --step N or the latest checkpoint \(no --step\)"),
])
def test_step_best_without_a_best_checkpoint_is_one_clear_line(run, tmp_path, capsys, metrics, message):
    workdir = without_best(run[0], tmp_path, metrics)
    before = snapshot(workdir)
    assert sample.main(["seeds", "--workdir", str(workdir), "--outdir", str(tmp_path / "out"), "--seeds",
                        "1", "--step", "best"]) == 2
    assert evaluate.main(["--workdir", str(workdir), "--step", "best"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err), err
    assert all(re.search(message, line) for line in err), err
    assert snapshot(workdir) == before and not (tmp_path / "out").exists()


def test_a_bad_step_or_an_outdir_among_the_best_is_refused(run, tmp_path, capsys):
    workdir = str(run[0])
    inside = os.path.join(workdir, "checkpoints_best", "png")
    assert sample.main(["seeds", "--workdir", workdir, "--outdir", inside, "--seeds", "1"]) == 2
    assert "checkpoints_best, which sampling never writes to" in capsys.readouterr().err
    assert not os.path.exists(inside)
    assert sample.main(["seeds", "--workdir", workdir, "--outdir", str(tmp_path), "--seeds", "1",
                        "--step", "latest"]) == 2
    assert evaluate.main(["--workdir", workdir, "--step", "latest"]) == 2
    assert capsys.readouterr().err.count("'latest' is neither a step number nor 'best'") == 2
