"""The sweep's Optuna study: the queue of its trials, claiming them and requeueing interrupted ones.

One study per sweep, named after the sweep file, in the journal file ROOT/study.journal (Optuna's
storage for several processes on one filesystem) or in the database of --storage URL. Each trial
of the sweep is a *slot* (user attr 'slot'), queued once as an Optuna WAITING trial when the study
is created, with its grid point fixed (random and bayes slots are sampled when claimed). A worker
claims a slot by popping it from the queue and runs it in ROOT/trial_NNNN. An attempt that did not
finish (its worker stopped or died) is marked FAIL without an 'error' attr, and its slot is queued
again with the same parameters: the next attempt runs in the same workdir and resumes there from
the checkpoints. A trial that failed by itself keeps its 'error' and is not run again.
"""

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from stylejax.sweeps import locks
from stylejax.sweeps.definition import Sweep
from stylejax.sweeps.errors import SweepError

STUDY_FILE = "study.journal"
SLOT = "slot"  # user attr: the sweep's trial an Optuna trial is an attempt of
ERROR = "error"  # user attr of a failed attempt: the last error line of its log
SECONDS = "seconds"  # user attr: how long an attempt ran, timed by its worker


@dataclasses.dataclass
class Claim:
    """A slot this worker now runs; `lock_fd` holds the slot's lock until the attempt ends."""

    trial: optuna.Trial
    slot: int
    workdir: str
    lock_fd: int


def trial_workdir(root: str, slot: int) -> str:
    return os.path.join(os.path.abspath(root), f"trial_{slot:04d}")


def open_study(sweep: Sweep, root: str, storage_url: str | None) -> optuna.Study:
    """Creates the sweep's study and queues its slots, or opens it again after checking that the
    sweep file still describes it. Queueing is idempotent, so a crash halfway is repaired."""
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise SweepError(f"cannot use --root {root}: {e.strerror}") from e
    with locks.held(os.path.join(root, locks.LOCK_FILE)):
        storage = _storage(storage_url or os.path.join(root, STUDY_FILE))
        sampler = TrialSeededSampler(sweep.method, sweep.seed)
        try:
            study = optuna.create_study(storage=storage, study_name=sweep.name, sampler=sampler,
                                        direction=sweep.direction)
        except DuplicatedStudyError:
            study = optuna.load_study(storage=storage, study_name=sweep.name, sampler=sampler)
        stored = study.user_attrs.get("sweep")
        if stored is None:
            study.set_user_attr("sweep", sweep.fingerprint())
        elif stored != sweep.fingerprint():
            old, new = json.loads(stored), json.loads(sweep.fingerprint())
            changed = ", ".join(k for k in new if old.get(k) != new[k])
            raise SweepError(f"the study of sweep {sweep.name!r} in {storage_url or root} was "
                             f"started with a different sweep file ({changed} changed); rerun "
                             "it with the original file, or use a new --root")
        queued = {t.user_attrs.get(SLOT) for t in study.get_trials(deepcopy=False)}
        grid = sweep.grid() if sweep.method == "grid" else None
        for slot in range(sweep.trials):
            if slot not in queued:
                study.enqueue_trial(grid[slot] if grid else {}, user_attrs={SLOT: slot})
    return study


def _storage(url: str) -> BaseStorage:
    if "://" not in url:
        try:
            return JournalStorage(JournalFileBackend(url))
        except OSError as e:
            raise SweepError(f"cannot open the study journal {url}: {e.strerror}") from e
    # SQLite waits this long for another worker's write instead of failing at once.
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    try:
        return RDBStorage(url, engine_kwargs=kwargs)
    except Exception as e:  # SQLAlchemy's errors for a bad URL or an unreachable database
        raise SweepError(f"cannot open the --storage {url}: {' '.join(str(e).split())}") from e


class TrialSeededSampler(BaseSampler):
    """Optuna's sampler of the sweep's method, made afresh for each trial with a seed drawn from
    (sweep seed, trial number): a trial's proposal depends neither on which worker asks for it
    nor on restarts, and no two trials share a random stream. Grid slots arrive with fixed
    parameters; random ones are drawn by RandomSampler, bayes ones by TPE."""

    def __init__(self, method: str, seed: int):
        self._method, self._seed = method, seed
        self._sampler = self._make(0)

    def _make(self, number: int) -> BaseSampler:
        seed = int(np.random.SeedSequence([self._seed, number]).generate_state(1)[0])
        if self._method == "bayes":
            return TPESampler(seed=seed, constant_liar=True)  # liar: trials run in parallel
        return RandomSampler(seed=seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._sampler = self._make(trial.number)
        self._sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, object]:
        return self._sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> object:
        return self._sampler.sample_independent(study, trial, param_name, param_distribution)


def attempts_by_slot(trials: Sequence[FrozenTrial]) -> dict[int, list[FrozenTrial]]:
    """Each slot's attempts, oldest first (Optuna trials without a slot are not the sweep's)."""
    slots: dict[int, list[FrozenTrial]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        if SLOT in trial.user_attrs:
            slots.setdefault(trial.user_attrs[SLOT], []).append(trial)
    return dict(sorted(slots.items()))


def interrupted(trial: FrozenTrial) -> bool:
    """An attempt that ended without finishing: stopped, or its worker died."""
    return trial.state == TrialState.FAIL and ERROR not in trial.user_attrs


def claim(study: optuna.Study, sweep: Sweep, root: str) -> Claim | None:
    """Pops the next queued slot and takes its lock; None when nothing can start now: nothing is
    queued, or the next slot's lock is still held by a process of an earlier attempt."""
    with locks.held(os.path.join(root, locks.LOCK_FILE)):
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            return None
        slot = waiting[0].user_attrs[SLOT]  # the one ask() pops: the oldest queued
        workdir = trial_workdir(root, slot)
        os.makedirs(workdir, exist_ok=True)
        fd = locks.try_lock(os.path.join(workdir, locks.LOCK_FILE))
        if fd is None:
            return None
        locks.set_owner(fd, waiting[0].number)
        trial = study.ask(dict(sweep.space))
        if trial.number != waiting[0].number:  # a worker under another root popped it first
            os.close(fd)
            study.tell(trial, state=TrialState.FAIL)  # no error: requeued if it was a slot
            return None
    return Claim(trial, slot, workdir, fd)


def requeue(study: optuna.Study, root: str) -> None:
    """Marks the RUNNING attempts whose lock is free (their worker and training process are gone)
    as interrupted, and queues every slot whose last attempt was interrupted once more."""
    with locks.held(os.path.join(root, locks.LOCK_FILE)):
        for slot, attempts in attempts_by_slot(study.get_trials(deepcopy=False)).items():
            last = attempts[-1]
            if last.state == TrialState.RUNNING:
                path = os.path.join(trial_workdir(root, slot), locks.LOCK_FILE)
                if locks.owner(path) != last.number:  # claimed under another root
                    continue
                fd = locks.try_lock(path)
                if fd is None:
                    continue
                try:  # held until the attempt is marked, so that nobody starts it meanwhile
                    study.tell(last.number, state=TrialState.FAIL, skip_if_finished=True)
                except UpdateFinishedTrialError:  # it finished after we listed it
                    continue
                finally:
                    os.close(fd)
                last = study.get_trials(deepcopy=False)[last.number]
            if interrupted(last):
                study.enqueue_trial(last.params, user_attrs={SLOT: slot})
