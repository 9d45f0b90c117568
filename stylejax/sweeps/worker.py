"""The loop of one sweep worker: claim queued trials, run up to --parallel of them as child
processes, record how each ended, requeue the trials of workers that died, and on SIGINT /
SIGTERM stop the children (they save a checkpoint) and leave the study resumable.

A worker stays until every trial of the sweep has ended, also those other workers run, so that it
can take over the trials of a worker that dies.
"""

import dataclasses
import math
import os
import signal
import subprocess
import time
from collections.abc import Callable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from stylejax.sweeps import process as child
from stylejax.sweeps.definition import Sweep
from stylejax.sweeps.results import write_results
from stylejax.sweeps.study import ERROR, SECONDS, Claim, attempts_by_slot, claim, interrupted, requeue

POLL_S = 0.5  # how often children and the study are looked at
REQUEUE_EVERY_S = 5.0  # how often the trials of dead workers are looked for


@dataclasses.dataclass
class _Running:
    claim: Claim
    process: subprocess.Popen
    log_offset: int
    cpu_group: int
    started: float
    signalled: int | None = None  # the last signal sent to stop it


class Worker:
    """Runs the sweep's trials from `study` until all have ended or a signal stops it."""

    def __init__(self, sweep: Sweep, root: str, study: optuna.Study, parallel: int,
                 say: Callable[[str], None] = lambda line: print(line, flush=True)):
        self.sweep, self.root, self.study, self.parallel, self.say = (
            sweep, root, study, parallel, say)
        self._cpu_groups = child.cpu_groups(parallel)
        self._running: list[_Running] = []
        self._stop: int | None = None  # the signal that asked to stop
        self._abort = False  # a second signal: kill the children without waiting for a save

    def run(self) -> int:
        """The exit status: 0 when the sweep has ended with a finished trial, 1 when every trial
        failed, 128 + signal when stopped."""
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._loop()
        finally:
            for s, handler in handlers.items():
                signal.signal(s, handler)
        best = write_results(self.study, self.sweep, self.root)
        results = os.path.join(self.root, "results.{md,csv,png}")
        if self._stop is not None:
            self.say(f"stopped; rerun the same command to resume the sweep. Results so far: "
                     f"{results}")
            return 128 + self._stop
        attempts = attempts_by_slot(self.study.get_trials(deepcopy=False))
        failed = sum(a[-1].state == TrialState.FAIL for a in attempts.values())
        self.say(f"sweep {self.sweep.name}: {len(attempts) - failed} of {len(attempts)} trials "
                 f"done, {failed} failed. Results: {results}")
        if best is None:
            return 1
        self.say(f"best: trial {best['trial']}, {self.sweep.metric} {best['objective']:.4g} "
                 f"({_params_text(best['params'])}) in {best['workdir']}")
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        """Only flags: the loop acts on them (printing here could re-enter a print)."""
        if self._stop is None:
            self._stop = signum
        else:
            self._abort = True

    def _loop(self) -> None:
        next_requeue = 0.0
        waiting_said = stop_said = False
        while True:
            for r in [r for r in self._running if r.process.poll() is not None]:
                self._running.remove(r)
                self._finish(r)
            if self._stop is None:
                if time.monotonic() >= next_requeue:
                    requeue(self.study, self.root)
                    next_requeue = time.monotonic() + REQUEUE_EVERY_S
                while len(self._running) < self.parallel and self._stop is None:
                    claimed = claim(self.study, self.sweep, self.root)
                    if claimed is None:
                        break
                    self._start(claimed)
            else:
                if not stop_said:
                    self.say(f"{signal.Signals(self._stop).name}: stopping; the running trials "
                             "save a checkpoint first (press Ctrl-C again to kill them without "
                             "saving)")
                    stop_said = True
                wanted = signal.SIGKILL if self._abort else signal.SIGTERM
                for r in self._running:
                    if r.signalled != wanted:
                        child.signal_group(r.process, wanted)
                        r.signalled = wanted
            if not self._running:
                if self._stop is not None or self._all_ended():
                    return
                if not waiting_said:
                    self.say("no trial left to start; waiting for the trials other workers run "
                             "(this worker takes them over if their worker dies)")
                    waiting_said = True
            time.sleep(POLL_S)

    def _all_ended(self) -> bool:
        attempts = attempts_by_slot(self.study.get_trials(deepcopy=False))
        return all(a[-1].state.is_finished() and not interrupted(a[-1]) for a in attempts.values())

    def _start(self, claimed: Claim) -> None:
        command = self.sweep.command_line(claimed.trial.params, claimed.workdir)
        used = {r.cpu_group for r in self._running}
        group = next(g for g in range(self.parallel) if g not in used)
        resumed = os.path.exists(os.path.join(claimed.workdir, child.LOG_FILE))
        try:
            process, offset = child.start(command, claimed.workdir, claimed.lock_fd,
                                          self._cpu_groups[group])
        except OSError as e:  # the command cannot be run at all
            claimed.trial.set_user_attr(ERROR, f"cannot run {command[0]}: {e}")
            self.study.tell(claimed.trial, state=TrialState.FAIL)
            os.close(claimed.lock_fd)
            self.say(f"trial {claimed.slot}: failed: cannot run {command[0]}: {e}")
            return
        self._running.append(_Running(claimed, process, offset, group, time.monotonic()))
        self.say(f"trial {claimed.slot}: {'resumed' if resumed else 'started'} "
                 f"({_params_text(claimed.trial.params)}), log in "
                 f"{os.path.join(claimed.workdir, child.LOG_FILE)}")

    def _finish(self, r: _Running) -> None:
        trial, slot, workdir = r.claim.trial, r.claim.slot, r.claim.workdir
        seconds = time.monotonic() - r.started
        code = r.process.returncode
        try:
            trial.set_user_attr(SECONDS, seconds)
            if code == 0:
                value = child.read_objective(workdir, self.sweep.metric)
                if value is not None and math.isfinite(value):
                    self.study.tell(trial, value)
                    self.say(f"trial {slot}: done in {seconds:.0f} s, {self.sweep.metric} "
                             f"{value:.4g}")
                else:
                    found = "no value" if value is None else value
                    self._fail(r, f"finished, but its metrics.jsonl has {found} for "
                                  f"{self.sweep.metric}", seconds)
            elif self._stop is not None:
                self.study.tell(trial, state=TrialState.FAIL)  # interrupted: resumed on rerun
                self.say(f"trial {slot}: stopped after {seconds:.0f} s; it resumes from its "
                         "checkpoint when the sweep is rerun")
            else:
                self._fail(r, child.error_line(workdir, r.log_offset, code), seconds)
        except (UpdateFinishedTrialError, ValueError):
            self.say(f"trial {slot}: ended after another worker had requeued it")
        finally:
            os.close(r.claim.lock_fd)
        write_results(self.study, self.sweep, self.root)

    def _fail(self, r: _Running, error: str, seconds: float) -> None:
        r.claim.trial.set_user_attr(ERROR, error)
        self.study.tell(r.claim.trial, state=TrialState.FAIL)
        self.say(f"trial {r.claim.slot}: failed after {seconds:.0f} s: {error}")


def _params_text(params: dict) -> str:
    return ", ".join(f"{n}={v:.4g}" if isinstance(v, float) else f"{n}={v}"
                     for n, v in params.items())
