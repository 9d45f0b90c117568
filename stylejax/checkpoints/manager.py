"""Orbax checkpoints of a run in WORKDIR/checkpoints: asynchronous, atomic, the newest K kept;
and its best checkpoint by a metric in WORKDIR/checkpoints_best (see stylejax.checkpoints.best).

Orbax writes each step into a temporary directory and renames it when complete, so a step
directory is either whole or absent; an interrupted save leaves only a temporary directory,
which is never restored (a writable manager removes it on start). Each step carries the
checksums of its arrays (stylejax.checkpoints.integrity), committed with them: a save is read
back and checked before any older step is deleted, and a restore checks what it read, so damaged
bytes are reported instead of trained on. Restoring checks the stored tree against the one the
caller expects (the network the config builds) before reading any array, and lays the arrays
out with the caller's shardings, so a checkpoint restores onto any device or process count.
"""

import contextlib
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

import flax
import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from stylejax.checkpoints.integrity import checksums, flat_arrays, host_checksums, mismatches
from stylejax.errors import CheckpointError

SUBDIR = "checkpoints"
BEST_SUBDIR = "checkpoints_best"
SET_ASIDE_SUBDIR = "checkpoints_set_aside"  # steps newer than a --config.restore_step go here
_ITEM = "state"
_CHECKSUMS = "checksums"
_EXAMPLES = 3  # differences named in a mismatch message


def checkpoint_dir(workdir: str, best: bool = False) -> str:
    return os.path.join(os.path.abspath(workdir), BEST_SUBDIR if best else SUBDIR)


def _registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
    """One PyTree handler for saving, full and partial restores, and reading metadata."""
    handler = ocp.PyTreeCheckpointHandler()
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    registry.add(_ITEM, ocp.args.PyTreeSave, handler)
    registry.add(_ITEM, ocp.args.PyTreeRestore, handler)
    json_handler = ocp.JsonCheckpointHandler()
    registry.add(_CHECKSUMS, ocp.args.JsonSave, json_handler)
    registry.add(_CHECKSUMS, ocp.args.JsonRestore, json_handler)
    return registry


# What orbax and tensorstore raise when a step's files cannot be written (a full disk) or read
# (missing, truncated, garbled).
STORAGE_ERRORS = (OSError, ValueError, KeyError)


def _reason(error: BaseException) -> str:
    """An orbax / tensorstore error squeezed into a short line, for a one-line message."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 120 else text[:120] + "..."


@contextlib.contextmanager
def _reading():
    """Around reads of a checkpoint. When one fails, tensorstore's other reads still complete,
    into orbax's event loop that is closed by then, and Python prints a traceback for each (a
    few hundred): from then on, drop those, and only those."""
    hook = sys.unraisablehook

    def quieter(unraisable) -> None:
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            hook(unraisable)

    sys.unraisablehook = quieter
    yield
    sys.unraisablehook = hook  # not reached on failure: the stragglers come later


def tree_differences(stored: Any, expected: Any, partial: bool = False) -> list[str]:
    """How a checkpoint's array tree differs from the expected one (shapes and dtypes, by name).

    With `partial`, arrays the checkpoint has beyond the expected ones are not differences.
    """
    have, want = flat_arrays(stored), flat_arrays(expected)
    out = [f"{k}: missing from the checkpoint" for k in sorted(want.keys() - have.keys())]
    if not partial:
        out += [f"{k}: in the checkpoint, not in the network" for k in sorted(have.keys() - want.keys())]
    for k in sorted(want.keys() & have.keys()):
        a, b = have[k], want[k]
        if tuple(a.shape) != tuple(b.shape) or np.dtype(a.dtype) != np.dtype(b.dtype):
            out.append(f"{k}: {a.dtype}{list(a.shape)} in the checkpoint, {b.dtype}{list(b.shape)} "
                       "in the network")
    return sorted(out, key=lambda line: "opt_state" in line)  # the networks' own arrays first


class Checkpoints:
    """The checkpoints of one run: save the train state, restore it (or a part of it) anywhere.

    Writable for training (`keep` newest steps kept, a save every `every_steps`, `metadata`
    stored with each step), or `read_only` for sampling and evaluation, which then never write
    into the directory. Use as a context manager: leaving it waits for a save in flight.

    With `best_by`, a metric name, it is the run's best checkpoint instead: the directory is
    WORKDIR/checkpoints_best, saves carry their metrics (orbax's metrics item, committed with
    the arrays), and orbax's BestN policy keeps the one step with the lowest `best_by` (every
    metric here is a distance; a step without that metric counts as the worst).
    """

    def __init__(self, workdir: str, *, every_steps: int = 0, keep: int = 3,
                 metadata: Mapping[str, Any] | None = None, read_only: bool = False,
                 best_by: str | None = None):
        self.best_by = best_by
        self.directory = checkpoint_dir(workdir, best=best_by is not None)
        if read_only and not os.path.isdir(self.directory):
            raise self._none_here(f"no checkpoints in {workdir}: {self.directory} does not exist; "
                                  "point --workdir at a training run's directory (the --workdir "
                                  "given to python -m stylejax.main)")
        self.every_steps = every_steps
        self._metadata = dict(metadata or {})
        self.keep = keep
        # The step being written in the background, its tree (for reading it back) and checksums.
        self._in_flight: tuple[int, Any, dict[str, str]] | None = None
        if best_by is None:  # rotation is ours: an old step goes once a newer one checks out
            best_fn, policy = None, ocp.checkpoint_managers.LatestN(None)
        else:
            def best_fn(metrics: Mapping[str, float]) -> float:
                return metrics.get(best_by, math.inf)
            policy = ocp.checkpoint_managers.BestN(get_metric_fn=best_fn, reverse=True, n=1,
                                                   keep_checkpoints_without_metrics=False)
        options = ocp.CheckpointManagerOptions(
            read_only=read_only, create=not read_only, cleanup_tmp_directories=not read_only,
            save_interval_steps=0 if read_only else 1,  # orbax warns about the defaults otherwise
            preservation_policy=policy, best_fn=best_fn, best_mode="min")
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              handler_registry=_registry())

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:  # the error on its way out says more than a failed wait would
            with contextlib.suppress(CheckpointError):
                self.close()

    @property
    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def due(self, step: int, force: bool = False) -> bool:
        """Whether `save` would save `step`: forced, or every `every_steps`."""
        return force or bool(self.every_steps and step % self.every_steps == 0)

    def save(self, step: int, state: Any, *, force: bool = False,
             metrics: Mapping[str, float] | None = None) -> bool:
        """Starts saving `state` as `step` when due (every `every_steps`) or forced, with the
        evaluation `metrics` of the state (kept only by a `best_by` manager).

        Returns once the arrays are copied to host memory (the caller may then donate them);
        the files are written in the background. Waits first for the previous save, and
        raises CheckpointError if that one failed.
        """
        if not self.due(step, force):
            return False
        self.wait()
        tree = flax.serialization.to_state_dict(state)
        sums = checksums(tree)
        try:
            self._manager.save(step, args=ocp.args.Composite(
                **{_ITEM: ocp.args.PyTreeSave(tree), _CHECKSUMS: ocp.args.JsonSave(sums)}),
                metrics=dict(metrics) if metrics else None, custom_metadata=self._metadata,
                force=True)
        except ocp.checkpoint_manager.StepAlreadyExistsError:
            raise CheckpointError(f"a checkpoint of step {step} already exists in {self.directory} "
                                  "and is kept as it is; is another run using this --workdir?") from None
        except STORAGE_ERRORS as e:
            raise self._save_failed(step, e) from e
        shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
        self._in_flight = (step, shapes, sums)
        return True

    def wait(self) -> None:
        """Blocks until the save in flight is committed, reads it back and checks it against
        the checksums of what was saved, and only then deletes the steps beyond `keep`; raises
        CheckpointError if the save failed or does not check out."""
        in_flight, self._in_flight = self._in_flight, None
        step = None if in_flight is None else in_flight[0]
        try:
            self._manager.wait_until_finished()
        except STORAGE_ERRORS as e:  # orbax re-raises what its writer thread hit
            raise self._save_failed(step, e) from e
        if in_flight is None:
            return
        self._verify_written(*in_flight)
        if self.best_by is None:
            for old in self.steps[:-self.keep]:
                self._manager.delete(old)

    def poll(self) -> None:
        """Once the save in flight has finished in the background, checks it as `wait` does:
        a failed save (a full disk, an unwritable directory) raises CheckpointError now instead
        of at the next save, and the rotation follows a verified save at once. Single-process
        runs only: with several processes the check stays at the next save, where they all wait
        together."""
        if self._in_flight is None or jax.process_count() > 1:
            return
        if not self._manager.is_saving_in_progress():
            self.wait()

    def _verify_written(self, step: int, shapes: Any, sums: dict[str, str]) -> None:
        """Reads `step` back onto the host and compares its checksums with the saved state's."""
        restore_args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), shapes)
        try:
            with _reading():
                read = self._manager.restore(step, args=ocp.args.Composite(**{
                    _ITEM: ocp.args.PyTreeRestore(item=shapes, restore_args=restore_args)}))[_ITEM]
        except STORAGE_ERRORS as e:
            raise self._save_failed(step, e) from e
        bad = mismatches(sums, host_checksums(read))
        if bad:
            raise self._save_failed(step, ValueError(
                f"read back, {len(bad)} arrays differ from what was saved, e.g. {bad[0]}"))

    def _save_failed(self, step: int | None, error: BaseException) -> CheckpointError:
        self._manager.reload()
        kept = ", ".join(map(str, self.steps)) or "none"
        return CheckpointError(f"saving the checkpoint of step {step} in {self.directory} failed "
                               f"({_reason(error)}); the earlier checkpoints are kept (steps: {kept}); "
                               "free disk space or fix the directory's permissions, then rerun "
                               "to resume")

    def close(self) -> None:
        self.wait()
        self._manager.close()

    def _none_here(self, message: str) -> CheckpointError:
        """`message`, or for the best checkpoint, how a run gets one."""
        if self.best_by is None:
            return CheckpointError(message)
        return CheckpointError(
            f"no best checkpoint in {self.directory}: training keeps one from its first "
            "evaluation on (--config.metrics, every --config.eval_every_steps and at the end); "
            "train with metrics, or use --step N or the latest checkpoint (no --step)")

    def resolve_step(self, step: int | None = None) -> int:
        """`step` if the directory has it, else (None) the latest, or for a `best_by` manager
        the best; CheckpointError otherwise."""
        steps = self.steps
        if not steps:
            raise self._none_here(f"no checkpoints in {self.directory} yet: train first (python -m "
                                  "stylejax.main ... --workdir) or point --workdir at another run")
        if step is None:
            best = self._manager.best_step() if self.best_by is not None else None
            return steps[-1] if best is None else best
        if step not in steps:
            raise CheckpointError(f"no checkpoint of step {step} in {self.directory}; available "
                                  f"steps: {', '.join(map(str, steps))}")
        return step

    def _unreadable(self, step: int, error: BaseException) -> CheckpointError:
        others = [s for s in self.steps if s != step]
        if self.best_by is not None:
            fix = (f"move it out of {self.directory}; training keeps a new best checkpoint at its "
                   "next evaluation")
        elif not others:
            fix = f"no other checkpoint is here: move it out of {self.directory} to train from scratch"
        else:
            fix = f"other steps here: {', '.join(map(str, others))} (sampling takes --step)"
            if step > others[-1]:
                fix += (f"; to resume training from step {others[-1]}, rerun with "
                        f"--config.restore_step={others[-1]} (newer steps are moved to "
                        f"{SET_ASIDE_SUBDIR}, not deleted)")
        return CheckpointError(f"checkpoint {self.step_dir(step)} is truncated or corrupt and cannot "
                               f"be restored ({_reason(error)}); {fix}")

    def set_aside_after(self, step: int) -> list[int]:
        """Moves the steps newer than `step` to WORKDIR/checkpoints_set_aside (never deleting
        them), so that a run resumed from `step` writes its own; returns the steps moved. Every
        process calls it; process 0 moves."""
        newer = [s for s in self.steps if s > step]
        if newer and jax.process_index() == 0:
            aside = os.path.join(os.path.dirname(self.directory), SET_ASIDE_SUBDIR)
            os.makedirs(aside, exist_ok=True)
            for s in newer:
                target, copy = os.path.join(aside, str(s)), 1
                while os.path.exists(target):  # an earlier fallback set this step aside too
                    target, copy = os.path.join(aside, f"{s}.{copy}"), copy + 1
                os.replace(self.step_dir(s), target)
        if newer:
            multihost_utils.sync_global_devices("stylejax: newer checkpoints set aside")
            self._manager.reload()
        return newer

    def metrics(self, step: int) -> dict[str, float] | None:
        """The metrics saved with `step` (None when it has none)."""
        metrics = self._manager.metrics(step)
        return None if metrics is None else dict(metrics)

    def metadata(self, step: int | None = None) -> dict:
        """The metadata saved with a step (the latest when None)."""
        step = self.resolve_step(step)
        try:
            with _reading():
                custom = self._manager.metadata(step).custom_metadata
        except STORAGE_ERRORS as e:
            raise self._unreadable(step, e) from e
        if not custom:
            raise self._unreadable(step, ValueError("its _CHECKPOINT_METADATA is missing or unreadable"))
        return dict(custom)

    def restore(self, target: Any, step: int | None = None, *, partial: bool = False) -> Any:
        """Restores `step` (the latest when None) into the structure of `target`.

        `target` is a pytree (a TrainState, or a dict of some of its fields with `partial`) of
        jax.ShapeDtypeStruct whose shardings say where each array goes. The checkpoint must hold
        exactly these arrays, shapes and dtypes (at least these with `partial`), or
        CheckpointError names the differences before anything is read.
        """
        step = self.resolve_step(step)
        expected = flax.serialization.to_state_dict(target)
        try:
            with _reading():
                items = self._manager.item_metadata(step)
                stored = items[_ITEM]
        except STORAGE_ERRORS as e:
            raise self._unreadable(step, e) from e
        if stored is None:
            raise self._unreadable(step, ValueError("its array metadata is missing"))
        differences = tree_differences(stored, expected, partial)
        if differences:
            more = len(differences) - _EXAMPLES
            listed = "; ".join(differences[:_EXAMPLES]) + (f"; and {more} more" if more > 0 else "")
            raise CheckpointError(
                f"checkpoint {self.step_dir(step)} holds a different network than the config "
                f"builds ({listed}); restore it with the config it was trained with, or train "
                "this config in a new --workdir")
        args = ocp.args.PyTreeRestore(item=expected, partial_restore=partial,
                                      restore_args=ocp.checkpoint_utils.construct_restore_args(expected))
        with_sums = _CHECKSUMS in items.keys()
        wanted = {_ITEM: args, **({_CHECKSUMS: ocp.args.JsonRestore()} if with_sums else {})}
        try:
            with _reading():
                read = self._manager.restore(step, args=ocp.args.Composite(**wanted))
        except STORAGE_ERRORS as e:
            raise self._unreadable(step, e) from e
        if not with_sums:
            raise self._unreadable(step, ValueError("it has no checksums of its arrays"))
        bad = mismatches(dict(read[_CHECKSUMS]), checksums(read[_ITEM]))
        if bad:
            raise self._unreadable(step, ValueError(
                f"{len(bad)} of its arrays differ from the checksums saved with them, e.g. {bad[0]}"))
        return flax.serialization.from_state_dict(target, read[_ITEM])
