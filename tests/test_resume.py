"""Resuming is exact: a run stopped, killed or signalled, then rerun, ends with the same bits as an
uninterrupted run on the same device count; its metrics file and best checkpoint carry on."""

import json
import logging
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from stylejax.checkpoints import Checkpoints, load_generator
from stylejax.data.pipeline import InputPipeline
from stylejax.errors import CheckpointError
from stylejax.train import evaluation, loop
from stylejax.train.loop import train
from tests.checkpoint_helpers import (
    assert_bitwise_equal,
    flat_leaves,
    flip_array_bytes,
    main_command,
    restore_state,
    save_init_checkpoint,
    snapshot,
    subprocess_env,
)
from tests.scripts.tiny_run import run_config

STEPS = 6


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """digits16 built once for the module (the input pipeline builds it on first use)."""
    path = str(tmp_path_factory.mktemp("data"))
    InputPipeline("digits16", global_batch_size=8, seed=0, data_dir=path)
    return path


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """The final state of an uninterrupted run of STEPS steps, as flat leaves."""
    state = train(run_config(data_dir, STEPS), str(tmp_path_factory.mktemp("reference")))
    assert int(state.step) == STEPS
    return flat_leaves(state)


def committed_steps(workdir) -> list[int]:
    directory = os.path.join(workdir, "checkpoints")
    return sorted(int(e) for e in os.listdir(directory) if e.isdigit()) if os.path.isdir(directory) else []


def wait_for(predicate, proc, log_path, timeout=300.0, poll=0.005):
    deadline = time.time() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the run ended early ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"timed out:\n{log_path.read_text()[-3000:]}")
        time.sleep(poll)


def start_main(workdir, data_dir, log_path, *overrides):
    with open(log_path, "w") as log:
        return subprocess.Popen(main_command(workdir, data_dir, *overrides), env=subprocess_env(),
                                stdout=log, stderr=subprocess.STDOUT)


def test_stopped_then_rerun_ends_bitwise_identical(reference, data_dir, tmp_path):
    half = train(run_config(data_dir, STEPS // 2), str(tmp_path))
    assert int(half.step) == STEPS // 2
    assert committed_steps(tmp_path) == [2, 3]  # every 2 steps, and at the end
    state = train(run_config(data_dir, STEPS), str(tmp_path))
    assert_bitwise_equal(flat_leaves(state), reference)
    assert committed_steps(tmp_path) == [3, 4, 6]  # the newest checkpoint_keep=3
    assert_bitwise_equal(flat_leaves(restore_state(tmp_path, run_config())), reference)


def test_adaptive_augmentation_resumes_bitwise_identical(data_dir, tmp_path):
    """p and the signs counted since its last move are in the checkpoint: stopped inside an
    interval and rerun, an ADA run ends with the uninterrupted run's bits."""
    def ada_config(steps):
        config = run_config(data_dir, steps)
        config.batch_size = 8
        config.augment.update(mode="ada", pipe="blit", p=0.3, interval=2, kimg=0.25)  # cheap to compile
        return config

    reference = flat_leaves(train(ada_config(3), str(tmp_path / "reference")))
    assert reference[".ada_p"] != np.float32(0.3)  # moved at step 2
    train(ada_config(1), str(tmp_path / "resumed"))  # inside the first interval
    assert_bitwise_equal(flat_leaves(train(ada_config(3), str(tmp_path / "resumed"))), reference)


def test_damaged_newest_checkpoint_is_refused_then_restore_step_resumes_exactly(
        reference, data_dir, tmp_path):
    """Bytes flipped in the newest step (its size unchanged): the rerun names the step and the
    way out and changes nothing; with --config.restore_step the run resumes from the older step,
    ends with the uninterrupted run's bits, and the damaged step is set aside, not deleted."""
    train(run_config(data_dir, 4), str(tmp_path))
    assert committed_steps(tmp_path) == [2, 4]
    flip_array_bytes(tmp_path / "checkpoints" / "4")
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=r"checkpoints/4 is truncated or corrupt and cannot be "
                                              r"restored \(1 of its arrays differ from the checksums "
                                              r"saved with them, .*--config.restore_step=2"):
        train(run_config(data_dir, STEPS), str(tmp_path))
    assert snapshot(tmp_path) == before
    config = run_config(data_dir, STEPS)
    config.restore_step = 2
    assert_bitwise_equal(flat_leaves(train(config, str(tmp_path))), reference)
    assert committed_steps(tmp_path) == [2, 4, 6]  # step 2 kept; 4 and 6 written anew
    assert os.listdir(tmp_path / "checkpoints_set_aside") == ["4"]


def test_a_refused_rerun_changes_nothing_in_the_workdir(data_dir, tmp_path):
    """A rerun whose metric setting is refused leaves config.json, the logs and the checkpoints
    as they were (sampling and evaluating read config.json)."""
    train(run_config(data_dir, 2), str(tmp_path))
    before = snapshot(tmp_path)
    config = run_config(data_dir, 4)
    config.metrics = ("no_such_metric",)
    with pytest.raises(ValueError, match="unknown metric 'no_such_metric'"):
        train(config, str(tmp_path))
    assert snapshot(tmp_path) == before


def test_rerun_with_another_architecture_is_refused_and_costs_nothing(data_dir, tmp_path):
    save_init_checkpoint(tmp_path, run_config(data_dir), step=2)
    before = snapshot(tmp_path)
    config = run_config(data_dir, 4)
    config.model.channel_max = 16
    with pytest.raises(CheckpointError, match=r"checkpoints/2 holds a different network .*d_params\.b16\."
                                              r"conv1\.bias: float32\[32\] in the checkpoint, "
                                              r"float32\[16\] in the network.*new --workdir"):
        train(config, str(tmp_path))
    assert snapshot(tmp_path) == before  # checkpoints, config.json and logs untouched


def test_sigkill_then_rerun_resumes_from_the_last_complete_checkpoint(reference, data_dir, tmp_path):
    log_path = tmp_path / "killed.log"
    proc = start_main(tmp_path, data_dir, log_path)

    def saving_after_the_first() -> bool:  # kill while a save is being written, if we catch one
        entries = os.listdir(tmp_path / "checkpoints") if (tmp_path / "checkpoints").is_dir() else []
        steps = [int(e) for e in entries if e.isdigit()]
        return bool(steps) and (any("tmp" in e for e in entries) or max(steps) >= 4)

    wait_for(saving_after_the_first, proc, log_path)
    proc.kill()
    proc.wait()
    complete = committed_steps(tmp_path)
    assert complete and max(complete) < STEPS

    rerun = subprocess.run(main_command(tmp_path, data_dir), env=subprocess_env(),
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming from the checkpoint of step {max(complete)} " in rerun.stderr
    assert_bitwise_equal(flat_leaves(restore_state(tmp_path, run_config())), reference)


def test_sigterm_saves_the_step_it_stopped_at(data_dir, tmp_path):
    log_path = tmp_path / "run.log"
    proc = start_main(tmp_path, data_dir, log_path, "--config.num_train_steps=1000",
                      "--config.checkpoint_every_steps=0")  # no periodic saves: only the signal's
    wait_for(lambda: "step 2/1000" in log_path.read_text(), proc, log_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 128 + signal.SIGTERM
    text = log_path.read_text()
    stopped = re.search(r"SIGTERM: stopped after step (\d+) of 1000; saved (\S+); rerun the same "
                        r"command to resume", text)
    assert stopped, text[-3000:]
    step = int(stopped[1])
    assert step >= 2 and committed_steps(tmp_path) == [step]
    assert stopped[2] == str(tmp_path / "checkpoints" / str(step))
    assert int(restore_state(tmp_path, run_config()).step) == step


def test_second_ctrl_c_aborts_at_once(data_dir, tmp_path):
    log_path = tmp_path / "run.log"
    proc = start_main(tmp_path, data_dir, log_path, "--config.num_train_steps=1000",
                      "--config.checkpoint_every_steps=0")
    wait_for(lambda: "step 1/1000" in log_path.read_text(), proc, log_path)
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: "press Ctrl-C again to abort" in log_path.read_text(), proc, log_path)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == -signal.SIGINT  # ended by the signal itself, not by Python
    assert committed_steps(tmp_path) == []
    with Checkpoints(str(tmp_path), read_only=True) as checkpoints:
        assert checkpoints.latest_step() is None


FID = {1: 5.0, 2: 1.0, 3: 4.0, 4: 3.0, 5: 2.0, 6: 6.0}  # the best at step 2; after it, at step 5


class ScriptedEvaluator:
    """Stands in for the metrics (the digits classifier trains for a minute): FID[step], and the
    G_ema variables each step was scored with, in `scored`."""

    scored: dict = {}

    def __init__(self, config, G, mesh, data_dir=None):
        pass

    def __call__(self, variables: dict, step: int) -> dict[str, float]:
        self.scored[step] = flat_leaves(variables)
        return {"fid_digits": FID[step], "kid_digits": -FID[step]}


def test_a_crash_and_resume_keep_the_best_checkpoint_and_each_evaluation_once(
        reference, data_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(evaluation, "Evaluator", ScriptedEvaluator)
    monkeypatch.setattr(ScriptedEvaluator, "scored", {})
    config = run_config(data_dir, STEPS)
    config.update(metrics=("fid_digits", "kid_digits"), eval_every_steps=1, checkpoint_keep=1)
    phases = loop.regularization_phases

    def dies_in_step_4(config, step):  # after step 3's evaluation, before the checkpoint of step 4
        if step == 3:
            raise RuntimeError("killed")
        return phases(config, step)

    monkeypatch.setattr(loop, "regularization_phases", dies_in_step_4)
    caplog.set_level(logging.INFO, logger=evaluation.__name__)
    with pytest.raises(RuntimeError, match="killed"):
        train(config, str(tmp_path))
    assert committed_steps(tmp_path) == [2]
    assert re.findall(r"step (\d) is the best so far", caplog.text) == ["1", "2"]
    caplog.clear()
    monkeypatch.setattr(loop, "regularization_phases", phases)
    state = train(config, str(tmp_path))  # resumes from step 2: steps 3 to 6 evaluated again
    assert "is the best so far" not in caplog.text  # none beat step 2's, from before the crash

    assert_bitwise_equal(flat_leaves(state), reference)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [{"step": s, "fid_digits": f, "kid_digits": -f} for s, f in FID.items()]
    assert committed_steps(tmp_path) == [6]
    assert os.listdir(tmp_path / "checkpoints_best") == ["2"]
    best = load_generator(str(tmp_path), "best")
    assert best.step == 2
    assert_bitwise_equal(flat_leaves(best.variables), ScriptedEvaluator.scored[2])
