"""A sweep worker: Optuna's study.optimize runs the queued trials, --parallel at a time, each a
`stylejax.main` subprocess in ROOT/trial_NNNN scored by the metric its run reported. All trials are queued
when the study is created (user attr 'slot' numbers them): a grid's combinations, random search's and bayes
search's first draws from the seed (later bayes trials are TPE's). Optuna hands each to one worker, and
queues again the trial of a worker whose heartbeat stopped; a worker stays until all trials have ended, to
take those over."""

import csv
import ctypes
import dataclasses
import functools
import io
import itertools
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import warnings
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from stylejax.files import write_atomically
from stylejax.sweeps.definition import Sweep, SweepError, load_sweep

SLOT, ERROR = "slot", "error"  # user attrs: the sweep's trial number; why it failed (its last error line)
STATUS = {TrialState.COMPLETE: "done", TrialState.FAIL: "failed", TrialState.RUNNING: "running",
          TrialState.WAITING: "pending"}
BAYES_RANDOM_TRIALS = 10  # TPE's default number of random trials before it models the results
_PRCTL = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None  # looked up before any fork
_RESULTS_LOCK = threading.Lock()


class TrialFailedError(Exception):
    """A trial's own failure (an error exit, or no objective): recorded with its error, not run again."""


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal file with the heartbeat Optuna 5.0 gives RDBStorage only (optuna issue #6615):
    study.optimize records it, fail_stale_trials fails the RUNNING trials silent for `grace_s` (a retry
    inherits its stale trial's last heartbeat: its start counts as one)."""

    def __init__(self, path: str, grace_s: int):
        super().__init__(JournalFileBackend(path))
        self._grace_s = grace_s

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, "heartbeat", time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        deadline = time.time() - self._grace_s
        return [self.get_trial_id_from_study_id_trial_number(study_id, t.number)
                for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                if max(t.system_attrs.get("heartbeat", 0), t.datetime_start.timestamp()) < deadline]

    def get_heartbeat_interval(self) -> int:
        return max(1, self._grace_s // 4)

    def get_heartbeat_stale_trial_callback(self) -> RetryHeartbeatStaleTrialCallback:
        return RetryHeartbeatStaleTrialCallback()


def open_study(sweep: Sweep, root: str, storage: str | None, grace_s: int) -> optuna.Study:
    """Creates the sweep's study with its trials queued, or opens it after checking that the sweep file has
    not changed; a running trial whose worker is silent for `grace_s` is run again."""
    storage = storage or os.path.join(root, "study.journal")
    try:
        os.makedirs(root, exist_ok=True)
        store = (RDBStorage(storage, heartbeat_interval=max(1, grace_s // 4), grace_period=grace_s,
                            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())
                 if "://" in storage else HeartbeatJournalStorage(storage, grace_s))
    except (OSError, SQLAlchemyError, ImportError) as e:
        raise SweepError(f"cannot open the study in {storage}: {' '.join(str(e).split())}") from e
    tpe = optuna.samplers.TPESampler(n_startup_trials=BAYES_RANDOM_TRIALS, constant_liar=True)
    args = dict(storage=store, study_name=sweep.name, sampler=tpe if sweep.method == "bayes" else None)
    fingerprint = repr(dataclasses.replace(sweep, command=()))  # the command may change between runs
    try:
        study = optuna.create_study(direction=sweep.objective[1], **args)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**args)
        for _ in range(20):  # the worker that created it may be queueing its trials right now
            if "sweep" in study.user_attrs:
                break
            time.sleep(0.5)
        if study.user_attrs.get("sweep") != fingerprint:
            raise SweepError(f"the study {sweep.name!r} in {storage} came from another version of the "
                             "sweep file, or was left half-made; use the original, or a new --root") from None
        return study
    if sweep.method == "grid":
        queue = [dict(zip(sweep.space, values, strict=True))
                 for values in itertools.product(*(d.choices for d in sweep.space.values()))]
    else:
        draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=sweep.seed))
        count = sweep.trials if sweep.method == "random" else min(sweep.trials, BAYES_RANDOM_TRIALS)
        queue = [draws.ask(sweep.space).params for _ in range(count)] + [{}] * (sweep.trials - count)
    for slot, params in enumerate(queue):
        study.enqueue_trial(params, user_attrs={SLOT: slot})
    study.set_user_attr("sweep", fingerprint)
    return study


def run_sweep(path: str, root: str, parallel: int, storage: str | None, grace_s: int) -> None:
    """Runs the sweep file's trials until all have ended; SweepError for a bad sweep, or if none finished. A
    signal ends the worker at once, as a kill does: its trials get SIGTERM, save and end, and run again once
    stale (after `grace_s`)."""
    sweep, root = load_sweep(path), os.path.abspath(root)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trials are reported here
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat, retries
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: no KeyboardInterrupt failing the trials
    study, waiting = open_study(sweep, root, storage, grace_s), []
    while True:
        optuna.storages.fail_stale_trials(study)
        if _trials(study, TrialState.WAITING):
            study.optimize(functools.partial(_run_trial, sweep, root), n_jobs=parallel,
                           catch=(TrialFailedError,), callbacks=[functools.partial(_after, sweep, root)])
        elif running := [t.user_attrs[SLOT] for t in _trials(study, TrialState.RUNNING)]:
            if running != waiting:
                print(f"waiting for trial(s) {running}: running elsewhere, or run again here once their "
                      "worker has been silent for --grace_s", flush=True)
            waiting = running
            time.sleep(1)
        else:
            break
    rows = write_results(study, sweep, root)
    if not (best := [row for row in rows if row["best"]]):
        raise SweepError(f"none of the {len(rows)} trials finished; trial 0: {rows[0]['error']}")
    print(f"sweep {sweep.name} ended; best: trial {best[0]['trial']}, {sweep.objective[0]} "
          f"{best[0][sweep.objective[0]]:.4g}. Results: {os.path.join(root, 'results.csv')}")


def _run_trial(sweep: Sweep, root: str, trial: optuna.Trial) -> float:
    """The objective: the trial's `stylejax.main` run in its workdir, where an earlier attempt left off."""
    if SLOT not in trial.user_attrs:  # another worker took the last queued trial first
        raise optuna.TrialPruned()
    slot, metric, worker = trial.user_attrs[SLOT], sweep.objective[0], os.getpid()
    params = {name: _suggest(trial, name, d) for name, d in sweep.space.items()}
    workdir = os.path.join(root, f"trial_{slot:04d}")
    command = [*sweep.command, "--config", sweep.config, "--workdir", workdir, *sweep.flags(params)]
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "train.log"), "ab+") as log:
        print(f"trial {slot}: {'resumed' if log.tell() else 'started'} {params}; log {log.name}", flush=True)
        log.write(f"# sweep: {shlex.join(command)}\n".encode())
        log.flush()
        start, started = log.tell(), time.monotonic()
        code = subprocess.call(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, preexec_fn=lambda: _stop_with(worker))
        log.seek(start)
        lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    seconds = time.monotonic() - started
    value = _last_value(workdir, metric) if code == 0 else None
    if value is None or not math.isfinite(value):
        last = ([line for line in lines if line.startswith("error:")] or lines or [""])[-1][:300]
        error = f"{last} (exit status {code})" if code else f"finished, but with {metric} {value}"
        trial.set_user_attr(ERROR, error)
        print(f"trial {slot}: failed after {seconds:.0f} s: {error}", flush=True)
        raise TrialFailedError(error)
    print(f"trial {slot}: done in {seconds:.0f} s, {metric} {value:.4g}", flush=True)
    return value


def _after(sweep: Sweep, root: str, study: optuna.Study, trial: FrozenTrial) -> None:
    """After each trial: the results rewritten, and the worker's optimize loop ended once the queue is."""
    write_results(study, sweep, root)
    if not _trials(study, TrialState.WAITING):
        study.stop()


def write_results(study: optuna.Study, sweep: Sweep, root: str) -> list[dict]:
    """Writes ROOT/results.csv, a row per trial from its latest attempt; returns the rows."""
    trials, metric = [t for t in study.get_trials(deepcopy=False) if SLOT in t.user_attrs], sweep.objective[0]
    latest = {t.user_attrs[SLOT]: t for t in trials}  # in trial order: a slot's last attempt wins
    rows = [{"trial": slot, "status": STATUS[t.state], **{n: t.params.get(n, "") for n in sweep.space},
             metric: t.value if t.state == TrialState.COMPLETE else "", "best": "",
             "attempts": sum(a.user_attrs[SLOT] == slot and a.datetime_start is not None for a in trials),
             "error": t.user_attrs.get(ERROR, "")} for slot, t in sorted(latest.items())]
    if done := [row for row in rows if row["status"] == "done"]:
        (min if sweep.objective[1] == "minimize" else max)(done, key=lambda row: row[metric])["best"] = "yes"
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with _RESULTS_LOCK:  # study.optimize calls back from its --parallel threads
        write_atomically(os.path.join(root, "results.csv"), lambda f: f.write(text.getvalue().encode()))
    return rows


def _stop_with(worker: int) -> None:
    """In a trial's process before exec: SIGTERM when the worker dies (Linux), so that its training saves and
    ends, and leaves the workdir to the trial's next attempt."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != worker:  # the worker died before prctl took effect
            os._exit(1)


def _trials(study: optuna.Study, state: TrialState) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(state,)) if SLOT in t.user_attrs]


def _suggest(trial: optuna.Trial, name: str, d: BaseDistribution) -> Any:
    """The trial's value of `name`: the queued one, else the sampler's."""
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    suggest = trial.suggest_int if isinstance(d, IntDistribution) else trial.suggest_float
    return suggest(name, d.low, d.high, step=d.step, log=d.log)


def _last_value(workdir: str, metric: str) -> float | None:
    """`metric` in the last line of the run's metrics.jsonl that has it: its last evaluated step."""
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) if os.path.exists(path) else io.StringIO() as f:
        records = [json.loads(line) for line in f if line.endswith("}\n")]  # not a line a kill cut short
    return next((float(r[metric]) for r in reversed(records) if isinstance(r.get(metric), int | float)), None)
