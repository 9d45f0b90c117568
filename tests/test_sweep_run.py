"""The sweep command with fake trials (tests/scripts/sweep_fake_trial.py: a second or two each, a known
objective): each trial runs once, workers split the trials, a killed worker's trials resume, bad input is one
line."""

import csv
import os
import signal
import subprocess
import time

import pytest
from optuna.distributions import FloatDistribution

from tests.scripts.sweep_helpers import (
    REPO,
    events,
    fake_objective,
    run_sweep,
    sweep_command,
    sweep_env,
    write_sweep,
)


def read_rows(root) -> list[dict]:
    with open(os.path.join(str(root), "results.csv")) as f:
        return list(csv.DictReader(f))


def fake_step(root, slot: int) -> int:
    path = os.path.join(str(root), f"trial_{slot:04d}", "step")
    return int(open(path).read()) if os.path.exists(path) else 0


def start_worker(sweep: str, root, step_seconds: float, *args: str) -> subprocess.Popen:
    return subprocess.Popen(sweep_command(sweep, root, *args), cwd=REPO, env=sweep_env(step_seconds),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def started_trials(output: str, count: int) -> set[int]:
    return {slot for slot in range(count) if f"trial {slot}: started" in output}


def test_a_grid_runs_each_trial_once_scored_by_the_metric_its_run_reported(tmp_path):
    sweep = write_sweep(tmp_path, space=repr({"optim.g_lr,optim.d_lr": [0.001, 0.002, 0.1],
                                              "loss.r1_gamma": [0.1, 1.0]}))
    result = run_sweep(sweep, tmp_path / "root", "--parallel", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_rows(tmp_path / "root")
    assert [row["trial"] for row in rows] == ["0", "1", "2", "3", "4", "5"]
    for slot, row in enumerate(rows):
        lr, gamma = float(row["optim.g_lr,optim.d_lr"]), float(row["loss.r1_gamma"])
        assert (lr, gamma) == ([0.001, 0.002, 0.1][slot // 2], [0.1, 1.0][slot % 2])  # first key slowest
        if lr > 0.05:  # the fake diverges: failed with its error line, and the others run on
            assert (row["status"], row["fid_digits"], row["attempts"]) == ("failed", "", "1")
            assert row["error"] == "error: training diverged: 20 non-finite steps in a row (exit status 2)"
        else:  # its last step's value (the fake logs a worse one at an earlier step)
            assert (row["status"], row["attempts"]) == ("done", "1")
            assert float(row["fid_digits"]) == pytest.approx(fake_objective(lr, gamma))
    assert [row["trial"] for row in rows if row["best"] == "yes"] == ["2"]  # |log10(0.002 / 0.002)| + 0.1
    assert "best: trial 2, fid_digits 0.1." in result.stdout
    again = run_sweep(sweep, tmp_path / "root")  # nothing left to run, failed trials included
    assert again.returncode == 0 and "started" not in again.stdout and "resumed" not in again.stdout
    assert all(events(tmp_path / "root", slot) == ["start 0"] + ["end"] * (slot < 4) for slot in range(6))


def test_two_workers_on_one_study_split_the_trials_and_run_each_once(tmp_path):
    space = {"optim.g_lr": FloatDistribution(1e-4, 1e-2, log=True), "loss.r1_gamma": [0.1]}
    sweep = write_sweep(tmp_path, method="'random'", trials="6", seed="5", space=repr(space))
    workers = [start_worker(sweep, tmp_path / "root", 0.15) for _ in range(2)]  # 1.5 s a trial
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    first, second = (started_trials(output, 6) for output in outputs)
    assert first and second and not first & second and first | second == set(range(6))
    assert all(events(tmp_path / "root", slot) == ["start 0", "end"] for slot in range(6))
    rows = read_rows(tmp_path / "root")
    assert [row["status"] for row in rows] == ["done"] * 6
    values = [float(row["optim.g_lr"]) for row in rows]
    assert len(set(values)) == 6 and all(1e-4 <= value <= 1e-2 for value in values)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_worker_leaves_its_trials_saved_and_the_rerun_resumes_them(tmp_path, signum):
    """Its trials' processes get SIGTERM and save (as stylejax.main does); the rerun runs them again in their
    workdirs once their worker's heartbeat is --grace_s old, and leaves the finished ones alone."""
    sweep = write_sweep(tmp_path, overrides=repr({"num_train_steps": 20, "metrics": ("fid_digits",)}))
    root = tmp_path / "root"
    worker = start_worker(sweep, root, 0.1, "--parallel", "2", "--grace_s", "4")
    deadline = time.monotonic() + 120
    while not (fake_step(root, 2) >= 3 and fake_step(root, 3) >= 3):  # trials 0 and 1 done, 2 and 3 midway
        assert time.monotonic() < deadline and worker.poll() is None, worker.stdout.read()
        time.sleep(0.1)
    worker.send_signal(signum)
    worker.communicate(timeout=60)
    assert worker.returncode == -signum
    time.sleep(1)  # a step of the fake trials, which then save and end
    saved = {slot: fake_step(root, slot) for slot in (2, 3)}
    assert all(0 < step < 20 for step in saved.values()), saved
    result = run_sweep(sweep, root, "--parallel", "2", "--grace_s", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [row["status"] for row in read_rows(root)] == ["done"] * 4
    assert [row["attempts"] for row in read_rows(root)] == ["1", "1", "2", "2"]
    for slot in (0, 1):
        assert events(root, slot) == ["start 0", "end"] and f"trial {slot}:" not in result.stdout
    for slot in (2, 3):
        assert events(root, slot) == ["start 0", f"start {saved[slot]}", "end"]
        assert f"trial {slot}: resumed" in result.stdout


@pytest.mark.parametrize("case,message", [
    ("unknown key", "space key 'optim.glr' is not in the config"),
    ("bad flag", "flag --parallel=0: 0 is not a positive integer"),
    ("sweep file changed", "came from another version of the sweep file"),
])
def test_bad_input_is_one_line_and_exit_status_2_before_any_trial(tmp_path, case, message):
    root, args = tmp_path / "root", []
    sweep = write_sweep(tmp_path, space=repr({"loss.r1_gamma": [0.1]}))
    if case == "unknown key":
        sweep = write_sweep(tmp_path, space=repr({"optim.glr": [0.1]}))
    elif case == "bad flag":
        args = ["--parallel", "0"]
    else:  # the same sweep file, edited after its study started
        assert run_sweep(sweep, root).returncode == 0
        sweep = write_sweep(tmp_path, space=repr({"loss.r1_gamma": [0.1, 1.0]}))
    result = run_sweep(sweep, root, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert "started" not in result.stdout
