"""The checkpoint directory: periodic asynchronous saves, the newest K kept, atomic steps, and one
clear error (that costs no checkpoint) for each way a restore can go wrong."""

import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec
from orbax.checkpoint._src.path import atomicity

from stylejax.checkpoints import Checkpoints
from stylejax.checkpoints.manager import tree_differences
from stylejax.errors import CheckpointError
from stylejax.train.programs import make_mesh
from stylejax.train.state import TrainState
from tests.checkpoint_helpers import (
    assert_bitwise_equal,
    flat_leaves,
    flip_array_bytes,
    restore_state,
    save_init_checkpoint,
    snapshot,
    truncate_arrays,
)
from tests.train_helpers import tiny_config


def abstract(tree_: dict) -> dict:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                                  tree_)


def test_saves_every_n_steps_keeps_the_newest_k_and_restores_any(tmp_path):
    with Checkpoints(str(tmp_path), every_steps=2, keep=2, metadata={"c_dim": 0}) as checkpoints:
        saved = [s for s in range(1, 8) if checkpoints.save(s, tree(s), force=s == 7)]
        assert saved == [2, 4, 6, 7]
    with Checkpoints(str(tmp_path), read_only=True) as checkpoints:
        assert checkpoints.steps == [6, 7]
        assert_bitwise_equal(flat_leaves(checkpoints.restore(abstract(tree(0)))), flat_leaves(tree(7)))
        assert_bitwise_equal(flat_leaves(checkpoints.restore(abstract(tree(0)), 6)), flat_leaves(tree(6)))
        assert checkpoints.metadata(6) == {"c_dim": 0}
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["6", "7"]


def test_train_state_round_trip_keeps_its_type_and_layout(tmp_path):
    config = tiny_config()
    saved = save_init_checkpoint(tmp_path, config, step=5)
    restored = restore_state(tmp_path, config)
    assert isinstance(restored, TrainState)
    assert_bitwise_equal(flat_leaves(restored), flat_leaves(saved))
    replicated = NamedSharding(make_mesh(), PartitionSpec())
    assert all(x.sharding.is_equivalent_to(replicated, x.ndim) for x in jax.tree_util.tree_leaves(restored))


def test_an_unfinished_save_is_never_restored_and_is_cleared(tmp_path):
    with Checkpoints(str(tmp_path), keep=3) as checkpoints:
        checkpoints.save(2, tree(2), force=True)
    # What a save killed half way leaves: orbax's temporary directory for the step.
    unfinished = tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp"
    shutil.copytree(tmp_path / "checkpoints" / "2", unfinished)
    with Checkpoints(str(tmp_path), read_only=True) as checkpoints:
        assert checkpoints.steps == [2]
        assert_bitwise_equal(flat_leaves(checkpoints.restore(abstract(tree(0)))), flat_leaves(tree(2)))
    assert unfinished.exists()  # read-only: left alone
    with Checkpoints(str(tmp_path), keep=3) as checkpoints:
        checkpoints.save(3, tree(3), force=True)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "3"]


def test_a_save_that_reads_back_wrong_stops_and_deletes_nothing(tmp_path, monkeypatch):
    """The rotation deletes an old step only once the new one has been read back intact."""
    with Checkpoints(str(tmp_path), keep=1) as checkpoints:
        checkpoints.save(1, tree(1), force=True)
    before = snapshot(tmp_path / "checkpoints" / "1")
    from stylejax.checkpoints import manager

    monkeypatch.setattr(manager, "host_checksums", lambda read: {k: "0" * 16 for k in ("w", "n.k")})
    with pytest.raises(CheckpointError, match=r"saving the checkpoint of step 2 .* failed \(read back, 2 "
                                              r"arrays differ from what was saved, e.g. n.k\); the "
                                              r"earlier checkpoints are kept \(steps: 1, 2\)"):
        with Checkpoints(str(tmp_path), keep=1) as checkpoints:
            checkpoints.save(2, tree(2), force=True)
            checkpoints.wait()
    assert snapshot(tmp_path / "checkpoints" / "1") == before


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    with Checkpoints(str(tmp_path), keep=1) as checkpoints:
        checkpoints.save(1, tree(1), force=True)
    before = snapshot(tmp_path / "checkpoints" / "1")

    async def disk_full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", disk_full)
    with pytest.raises(CheckpointError, match=r"saving the checkpoint of step 2 in .* failed \(.*No space "
                                              r"left on device\); the earlier checkpoints are kept "
                                              r"\(steps: 1\)"):
        with Checkpoints(str(tmp_path), keep=1) as checkpoints:
            checkpoints.save(2, tree(2), force=True)  # written in the background
            deadline = time.time() + 60
            while time.time() < deadline:  # the training loop polls once a step
                checkpoints.poll()
                time.sleep(0.01)
    monkeypatch.undo()
    assert snapshot(tmp_path / "checkpoints" / "1") == before
    with Checkpoints(str(tmp_path), read_only=True) as checkpoints:
        assert checkpoints.steps == [1]
        assert_bitwise_equal(flat_leaves(checkpoints.restore(abstract(tree(0)))), flat_leaves(tree(1)))


def remove_state(step_dir) -> None:
    shutil.rmtree(os.path.join(step_dir, "state"))


def tree(step: int) -> dict:
    """An array of incompressible values (stored as they are) and a small one."""
    w = np.random.RandomState(step).randn(2000).astype(np.float32)
    return {"w": jnp.asarray(w), "n": {"k": jnp.asarray(step, jnp.int32)}}


@pytest.mark.parametrize("damage, message", [
    (truncate_arrays, r"checkpoints/4 is truncated or corrupt and cannot be restored \(.*\); other steps "
                      r"here: 2 \(sampling takes --step\); to resume training from step 2, rerun with "
                      r"--config.restore_step=2 \(newer steps are moved to checkpoints_set_aside, "
                      r"not deleted\)$"),
    (remove_state, r"checkpoints/4 is truncated or corrupt"),
    (flip_array_bytes, r"checkpoints/4 is truncated or corrupt and cannot be restored \(1 of its arrays "
                       r"differ from the checksums saved with them, e.g. w\); other steps here: 2"),
], ids=["truncated arrays", "no state", "flipped bytes"])
def test_a_damaged_checkpoint_is_reported_and_left_as_it_is(tmp_path, damage, message):
    with Checkpoints(str(tmp_path)) as checkpoints:
        checkpoints.save(2, tree(2), force=True)
        checkpoints.save(4, tree(4), force=True)
    damage(tmp_path / "checkpoints" / "4")
    before = snapshot(tmp_path)
    with Checkpoints(str(tmp_path), read_only=True) as checkpoints:
        with pytest.raises(CheckpointError, match=message) as error:
            checkpoints.restore(abstract(tree(0)))
        assert_bitwise_equal(flat_leaves(checkpoints.restore(abstract(tree(0)), 2)), flat_leaves(tree(2)))
    assert "\n" not in str(error.value)
    assert snapshot(tmp_path) == before


def test_a_missing_step_or_no_checkpoint_is_reported(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoints in .*: .*checkpoints does not exist"):
        Checkpoints(str(tmp_path), read_only=True)
    with Checkpoints(str(tmp_path)) as checkpoints:
        with pytest.raises(CheckpointError, match=r"no checkpoints in .*checkpoints yet"):
            checkpoints.restore(abstract(tree(0)))
        checkpoints.save(2, tree(2), force=True)
        checkpoints.save(4, tree(4), force=True)
        checkpoints.wait()
        with pytest.raises(CheckpointError, match=r"no checkpoint of step 3 in .*; available steps: 2, 4"):
            checkpoints.restore(abstract(tree(0)), 3)


def test_a_different_tree_is_refused_before_reading(tmp_path):
    with Checkpoints(str(tmp_path)) as checkpoints:
        checkpoints.save(2, tree(2), force=True)
    before = snapshot(tmp_path)
    other = {"w": jnp.zeros((4,), jnp.float32), "n": {"k": jnp.zeros((), jnp.int32)}}
    with Checkpoints(str(tmp_path), read_only=True) as checkpoints:
        with pytest.raises(CheckpointError, match=r"holds a different network than the config builds "
                                                  r"\(w: float32\[2000\] in the checkpoint, float32\[4\] "
                                                  r"in the network\); restore it with the config"):
            checkpoints.restore(abstract(other))
        # A partial restore reads just the arrays asked for.
        assert_bitwise_equal(flat_leaves(checkpoints.restore(abstract({"w": tree(0)["w"]}), partial=True)),
                             flat_leaves({"w": tree(2)["w"]}))
    assert snapshot(tmp_path) == before


def test_tree_differences_names_each_kind():
    have = {"a": np.zeros((2,), np.float32), "b": np.zeros((), np.int32), "old": np.zeros(1)}
    want = {"a": np.zeros((3,), np.float32), "b": np.zeros((), np.float32), "new": np.zeros(1)}
    assert tree_differences(have, want) == [
        "new: missing from the checkpoint",
        "old: in the checkpoint, not in the network",
        "a: float32[2] in the checkpoint, float32[3] in the network",
        "b: int32[] in the checkpoint, float32[] in the network",
    ]
    assert tree_differences(have, {"a": np.zeros((2,), np.float32)}, partial=True) == []
