"""The sweep command with fake trials (tests/scripts/sweep_fake_trial.py: a second or two each, a
known objective): results, resuming after a kill or Ctrl-C, two workers, bad input."""

import csv
import os
import signal
import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState

from stylejax.sweeps.definition import load_sweep
from stylejax.sweeps.errors import SweepError
from stylejax.sweeps.locks import LOCK_FILE, try_lock
from stylejax.sweeps.process import cpu_groups, read_objective
from stylejax.sweeps.study import open_study
from tests.scripts.sweep_helpers import (
    REPO,
    events,
    fake_objective,
    run_sweep,
    sweep_command,
    sweep_env,
    write_sweep,
)

GRID = {"optim.g_lr,optim.d_lr": [0.001, 0.002, 0.1], "loss.r1_gamma": [0.1, 1.0]}


def read_rows(root) -> list[dict]:
    with open(os.path.join(str(root), "results.csv")) as f:
        return list(csv.DictReader(f))


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def lock_free(path) -> bool:
    fd = try_lock(str(path))
    if fd is None:
        return False
    os.close(fd)
    return True


def fake_step(root, slot: int) -> int:
    path = os.path.join(str(root), f"trial_{slot:04d}", "step")
    return int(open(path).read()) if os.path.exists(path) else 0


def test_grid_sweep_runs_to_the_end_and_finds_the_best_trial(tmp_path):
    sweep = write_sweep(tmp_path, space=repr(GRID))
    result = run_sweep(sweep, tmp_path / "root", "--parallel", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_rows(tmp_path / "root")
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    for row in rows:
        lr, gamma = float(row["optim.g_lr,optim.d_lr"]), float(row["loss.r1_gamma"])
        if lr > 0.05:  # the fake trial diverges: recorded with its error, the others go on
            assert row["status"] == "failed" and row["fid_digits"] == ""
            assert row["error"] == ("error: training diverged: 20 non-finite steps in a row "
                                    "(exit status 2)")
        else:  # the last step's value (the fake's earlier step is 100 worse)
            assert row["status"] == "done"
            assert float(row["fid_digits"]) == pytest.approx(fake_objective(lr, gamma))
        assert row["command"].endswith(f"--config.optim.g_lr={lr} --config.optim.d_lr={lr} "
                                       f"--config.loss.r1_gamma={gamma}")
    best = [r for r in rows if r["best"] == "yes"]
    assert len(best) == 1 and best[0]["optim.g_lr,optim.d_lr"] == "0.002"
    assert best[0]["loss.r1_gamma"] == "0.1"  # the smallest objective: |log10(1)| + 0.1
    markdown = (tmp_path / "root" / "results.md").read_text()
    assert "| **2** (best) | done | 0.002 | 0.1 | 0.1 |" in markdown
    assert "4 of 6 trials done, 2 failed" in markdown
    assert (tmp_path / "root" / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "best: trial 2, fid_digits 0.1 " in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_a_stopped_sweep_resumes_without_redoing_finished_trials(tmp_path, signum):
    """SIGKILL: the sweep dies, its trials get SIGTERM (and save), the rerun finds their locks
    free and requeues them. SIGINT (Ctrl-C): the sweep stops them itself and exits 130."""
    sweep = write_sweep(tmp_path, overrides=repr({"num_train_steps": 20,
                                                  "metrics": ("fid_digits",)}))
    root = tmp_path / "root"
    first = subprocess.Popen(sweep_command(sweep, root, "--parallel", "2"), cwd=REPO,
                             env=sweep_env(0.1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    # Midway: trials 0 and 1 (of 4) finished, 2 and 3 a few steps in.
    wait_for(lambda: fake_step(root, 2) >= 3 and fake_step(root, 3) >= 3)
    first.send_signal(signum)
    output = first.communicate(timeout=60)[0]
    for slot in (2, 3):  # the trials have saved and exited once their lock is free
        wait_for(lambda slot=slot: lock_free(root / f"trial_{slot:04d}" / LOCK_FILE))
    assert first.returncode == (-9 if signum == signal.SIGKILL else 130), output
    if signum == signal.SIGINT:
        assert "trial 2: stopped after" in output and "trial 3: stopped after" in output
        assert [r["status"] for r in read_rows(root)] == ["done", "done", "interrupted",
                                                          "interrupted"]
    stopped_at = {slot: fake_step(root, slot) for slot in (2, 3)}
    result = run_sweep(sweep, root, "--parallel", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["status"] for r in read_rows(root)] == ["done"] * 4
    for slot in (0, 1):  # finished before the stop: not run again
        assert events(root, slot) == ["start 0", "end"]
        assert f"trial {slot}:" not in result.stdout
    for slot in (2, 3):  # resumed in the same workdir from the step they had saved
        assert events(root, slot) == ["start 0", f"start {stopped_at[slot]}", "end"]
        assert f"trial {slot}: resumed" in result.stdout
    assert [r["attempts"] for r in read_rows(root)] == ["1", "1", "2", "2"]


def test_two_workers_on_one_study_run_each_trial_once(tmp_path):
    sweep = write_sweep(tmp_path, method="'random'", trials="8", seed="5", space=repr(
        {"optim.g_lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
         "loss.r1_gamma": [0.1, 1.0]}))
    root = tmp_path / "root"
    workers = [subprocess.Popen(sweep_command(sweep, root, "--parallel", "2"), cwd=REPO,
                                env=sweep_env(0.3), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    started = [{s for s in range(8) if f"trial {s}: started" in out} for out in outputs]
    assert started[0] and started[1] and not started[0] & started[1]  # split, no overlap
    assert started[0] | started[1] == set(range(8))
    for slot in range(8):
        assert events(root, slot) == ["start 0", "end"]
    study = optuna.load_study(study_name="fake", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(root / "study.journal"))))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 8
    # The same sweep run by one worker proposes the same trials (seeded by sweep and trial).
    alone = run_sweep(sweep, tmp_path / "alone", "--parallel", "4")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    params = [(r["trial"], r["optim.g_lr"], r["loss.r1_gamma"]) for r in read_rows(root)]
    assert params == [(r["trial"], r["optim.g_lr"], r["loss.r1_gamma"])
                      for r in read_rows(tmp_path / "alone")]
    assert len({p[1] for p in params}) == 8


@pytest.mark.parametrize("fields,message", [
    ({"space": repr({"optim.glr": [0.001]})}, "space key 'optim.glr' is not in the config"),
    ({"space": "{}"}, "the space is empty"),
    ({"objective": repr(("fid_digit", "minimize"))}, "unknown metric 'fid_digit'"),
])
def test_bad_input_is_one_line_before_any_trial(tmp_path, fields, message):
    result = run_sweep(write_sweep(tmp_path, **fields), tmp_path / "root")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "root").exists()


def test_a_changed_sweep_file_is_refused_on_the_same_root(tmp_path):
    open_study(load_sweep(write_sweep(tmp_path)), str(tmp_path / "root"), None)
    changed = load_sweep(write_sweep(tmp_path, space=repr({"loss.r1_gamma": [0.1, 1.0, 10.0]})))
    with pytest.raises(SweepError, match=r"started with a different sweep file \(space, trials "
                                         r"changed\); rerun it with the original file"):
        open_study(changed, str(tmp_path / "root"), None)


def test_objective_is_the_last_value_of_the_highest_step(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 200, "fid_digits": 9.0}\n{"step": 400, "fid_digits": 7.0, "kid_digits": 1}\n'
        '{"step": 400, "fid_digits": 6.5}\n{"step": 300, "fid_digits": 1.0}\n{"step": 5')
    assert read_objective(str(tmp_path), "fid_digits") == 6.5
    assert read_objective(str(tmp_path), "kid_digits") == 1.0
    assert read_objective(str(tmp_path), "fid") is None
    assert read_objective(str(tmp_path / "nothing"), "fid_digits") is None


def test_parallel_trials_get_disjoint_cpus():
    cpus = sorted(os.sched_getaffinity(0))
    assert cpu_groups(1) == [tuple(cpus)]
    if len(cpus) >= 2:
        first, second = cpu_groups(2)
        assert sorted(first + second) == cpus and abs(len(first) - len(second)) <= 1
    assert cpu_groups(len(cpus) + 1) == [(c,) for c in cpus] + [(cpus[0],)]
