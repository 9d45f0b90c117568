"""One attempt of a trial as a child process: the training command in the trial's workdir, its
log, its share of the CPUs, and what it leaves behind (the objective or the error)."""

import ctypes
import datetime
import json
import os
import signal
import subprocess
import sys

LOG_FILE = "train.log"  # in the trial's workdir; every attempt appends to it
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def cpu_groups(parallel: int) -> list[tuple[int, ...]]:
    """This process's CPUs split into `parallel` disjoint groups (shared round-robin when there
    are fewer CPUs than trials), so that trials running side by side do not fight over cores:
    XLA and TensorFlow size their thread pools to the CPUs a process may use."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cpus:
        return [()] * parallel
    if parallel >= len(cpus):
        return [(cpus[i % len(cpus)],) for i in range(parallel)]
    return [tuple(group) for group in _split(cpus, parallel)]


def _split(items: list[int], parts: int) -> list[list[int]]:
    """`items` cut into `parts` consecutive runs whose lengths differ by at most one."""
    size, extra = divmod(len(items), parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [items[bounds[i]:bounds[i + 1]] for i in range(parts)]


def start(command: list[str], workdir: str, lock_fd: int, cpus: tuple[int, ...]) -> tuple[
        subprocess.Popen, int]:
    """Starts `command` with its output appended to the workdir's log; returns the process and
    where its output starts in the log. The child inherits the trial's lock, runs in its own
    session (a Ctrl-C at the terminal reaches the sweep, which stops it with one SIGTERM), and on
    Linux gets SIGTERM when the sweep dies, which makes stylejax.main save and exit."""
    with open(os.path.join(workdir, LOG_FILE), "ab") as log:
        offset = log.tell()
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        log.write(f"# {stamp} sweep: {' '.join(command)}\n".encode())
        log.flush()
        parent = os.getpid()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, pass_fds=(lock_fd,),
                                   start_new_session=True,
                                   preexec_fn=lambda: _in_child(parent, cpus))
    return process, offset


def _in_child(parent: int, cpus: tuple[int, ...]) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the sweep died before the line above took effect
            os._exit(1)


def signal_group(process: subprocess.Popen, signum: int) -> None:
    """Sends `signum` to the child and to any process it started."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def read_objective(workdir: str, metric: str) -> float | None:
    """`metric` at the highest evaluated step of the workdir's metrics.jsonl (of repeated lines of
    a step, as a resumed run may write, the last); None if it was never evaluated."""
    step, value = -1, None
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return None
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if isinstance(record, dict) and metric in record and record.get("step", -1) >= step:
            step, value = record.get("step", -1), record[metric]
    return float(value) if isinstance(value, int | float) else None


def error_line(workdir: str, offset: int, returncode: int) -> str:
    """Why an attempt failed: the last 'error:' line of its output, else its last line."""
    with open(os.path.join(workdir, LOG_FILE), "rb") as f:
        f.seek(offset)
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines()[1:]]
    lines = [line for line in lines if line]
    errors = [line for line in lines if line.startswith("error:")]
    status = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    last = (errors or lines or [""])[-1][:300]
    return f"{last} ({status})" if last else status
