"""A saga's caller's read (sagas/contract.py READ), on the model: the count up to the live volume
(sagas/volume_list_changed_blocks.py) reads between its temporary snapshot and its release. The
read runs once, in the process that began the saga, with the snapshot there; a read that fails
undoes the saga (no temporary snapshot outlives the call); a saga recovered after a crash in
the read does not read again and takes the snapshot back; a read the saga has no place for, or
a READ that names no step, is refused before anything is recorded."""
from __future__ import annotations

import pytest

from tests.saga_scenarios import _tracked_family
from zfsaga.faults import FaultHooks, Faults, SimulatedCrash
from zfsaga.sagas import volume_list_changed_blocks as counting
from zfsaga.sagas.contract import BadPlan
from zfsaga.sagas.runner import open_engine
from zfsaga.steps import srs
from zfsaga.steps.base import OWNER
from zfsaga.steps.zfs.model import ModelZfs


@pytest.fixture
def family(tmp_path):
    zfs = ModelZfs(pools=("tank",))
    zfs.create_filesystem("tank/t")
    fx = _tracked_family(zfs, "tank/t")
    ident = srs.identify(zfs, fx["sr"])
    return zfs, fx, ident, tmp_path


def _temporary(zfs, vdi: str) -> list[str]:
    return [n for n in zfs.list_tree(vdi, ["type"]) if f"@{counting.TEMPORARY}" in n]


def _engine(zfs, state, **kw):
    return open_engine(zfs, state, retry_sleep=lambda s: None, lock_wait=2, **kw)


def test_the_read_runs_once_with_the_temporary_snapshot_there(family) -> None:
    zfs, fx, ident, state = family
    seen: list[tuple[str, list[str], dict]] = []

    def read(facts):
        name = facts["point"]["name"]
        seen.append((name, _temporary(zfs, fx["vdi"]), zfs.user_props(name)))

    out = counting.start(_engine(zfs, state), ident.key, fx["sr"], ident.guid, fx["vdi"], read)
    assert out.status == "succeeded", out.error
    [(name, there, user)] = seen
    assert there == [name] and name.startswith(f"{fx['vdi']}@{counting.TEMPORARY}")
    assert set(user) == {OWNER}, "tagged as the saga's, and no key: never a VDI"
    assert _temporary(zfs, fx["vdi"]) == []


def test_a_read_that_fails_takes_the_temporary_snapshot_back(family) -> None:
    zfs, fx, ident, state = family
    before = sorted(zfs.list_tree(fx["sr"], ["type"]))

    def read(facts):
        raise OSError("the send's pipe broke")

    engine = _engine(zfs, state)
    out = counting.start(engine, ident.key, fx["sr"], ident.guid, fx["vdi"], read)
    assert out.status == "compensated"
    assert "the read after point: OSError: the send's pipe broke" in out.error
    assert sorted(zfs.list_tree(fx["sr"], ["type"])) == before
    assert engine.journal.active(ident.key) == []


def test_a_crash_in_the_read_is_recovered_without_reading_again(family) -> None:
    zfs, fx, ident, state = family
    reads: list[str] = []

    def read(facts):
        reads.append(facts["point"]["name"])
        raise SimulatedCrash("killed in the read")  # not an Exception: the process dies

    with pytest.raises(SimulatedCrash):
        counting.start(_engine(zfs, state), ident.key, fx["sr"], ident.guid, fx["vdi"], read)
    assert _temporary(zfs, fx["vdi"]) == reads  # left by the dead process
    [out] = _engine(zfs, state).recover()
    assert out.status == "succeeded", out.error
    assert _temporary(zfs, fx["vdi"]) == [] and len(reads) == 1


def test_a_release_that_fails_after_the_read_keeps_the_answer(family) -> None:
    """The count was read: the caller's answer holds (EFFECT), the release is cleanup the
    SR's next saga finishes."""
    zfs, fx, ident, state = family
    faults = Faults.parse("fail:destroy_snapshots:permanent", mode="raise")
    zfs.hooks = FaultHooks(faults)
    read: list[str] = []
    out = counting.start(_engine(zfs, state, boundary=faults.boundary), ident.key, fx["sr"],
                         ident.guid, fx["vdi"], lambda facts: read.append("read"))
    assert read == ["read"]
    assert out.status == "stuck" and out.effect_taken, (out.status, out.error)
    zfs.hooks = FaultHooks(None)
    engine = _engine(zfs, state)
    counting.start(engine, ident.key, fx["sr"], ident.guid, fx["vdi"], lambda facts: None)
    assert _temporary(zfs, fx["vdi"]) == []
    assert engine.journal.active(ident.key) == []


def test_a_read_has_a_place_only_in_a_saga_that_declares_one(family) -> None:
    zfs, fx, ident, state = family
    from zfsaga.sagas.catalog import saga_of

    engine = _engine(zfs, state)
    with pytest.raises(ValueError, match="no READ step"):
        saga_of("volume.snapshot").begin(engine, ident.key, dict, read=lambda facts: None)

    class Misread(counting.VolumeListChangedBlocks):  # its own KIND unset: never registered
        READ = "count"

    with pytest.raises(BadPlan, match="READ names 'count'"):
        Misread.plan({"target": "tank/t/sr/vdi@x", "candidates": []})


def _set_aside_count(zfs, fx, ident, state, vdi: str) -> None:
    """A count whose release fails, and fails again when the SR's next saga retries it: that
    saga sets it aside (sagas/recovery.py), and the SR goes on with the temporary snapshot
    still there."""
    faults = Faults.parse("fail:destroy_snapshots:permanent:2", mode="raise")
    zfs.hooks = FaultHooks(faults)
    out = counting.start(_engine(zfs, state), ident.key, fx["sr"], ident.guid, vdi,
                         lambda facts: None)
    assert out.status == "stuck" and out.effect_taken, (out.status, out.error)


def _retry_set_aside(zfs, fx, ident, state, monkeypatch) -> object:
    """A minute later: the SR's next saga (here another count) retries the set-aside release."""
    from zfsaga.sagas import recovery

    zfs.hooks = FaultHooks(None)
    monkeypatch.setattr(recovery, "CLEANUP_RETRY_S", -1.0)
    engine = _engine(zfs, state)
    out = counting.start(engine, ident.key, fx["sr"], ident.guid, fx["vdi"], lambda facts: None)
    assert out.status == "succeeded", out.error
    return engine


def test_a_set_aside_release_finds_its_snapshot_where_a_revert_moved_it(family,
                                                                        monkeypatch) -> None:
    """A revert between leaves the temporary snapshot (newer than the revert's point) on the
    retired old head: the release takes it there, by its guid, not refuse it as foreign."""
    from zfsaga.sagas import volume_revert

    zfs, fx, ident, state = family
    _set_aside_count(zfs, fx, ident, state, fx["vdi"])
    out = volume_revert.start(_engine(zfs, state), fx["sr"], fx["vdi"], f"{fx['vdi']}@s1")
    assert out.status == "succeeded", out.error
    moved = [n for n in zfs.list_tree(fx["sr"], ["type"]) if f"@{counting.TEMPORARY}" in n]
    assert moved and ".old-" in moved[0], moved
    engine = _retry_set_aside(zfs, fx, ident, state, monkeypatch)
    left = [n for n in zfs.list_tree(fx["sr"], ["type"]) if f"@{counting.TEMPORARY}" in n]
    assert left == [], left
    assert [(r.kind, r.status) for r in engine.journal.active()] == []


def test_a_set_aside_release_collects_the_destroyed_volume_it_kept(family,
                                                                   monkeypatch) -> None:
    """A Volume.destroy between keeps the volume, retired, for the temporary snapshot alone:
    once the release takes that snapshot, nothing needs the volume, and it goes too."""
    from zfsaga.sagas import volume_destroy
    from zfsaga.steps import meta

    zfs, fx, ident, state = family
    solo = f"{fx['sr']}/solo"
    zfs.create_zvol(solo, 4 * 1024 * 1024, props={meta.KEY: "solo", meta.CBT: "on"})
    _set_aside_count(zfs, fx, ident, state, solo)
    out = volume_destroy.start(_engine(zfs, state), ident.key, fx["sr"], ident.guid, solo)
    assert out.status == "succeeded", out.error
    _retry_set_aside(zfs, fx, ident, state, monkeypatch)
    left = [n for n in zfs.list_tree(fx["sr"], ["type"]) if n.startswith(solo)]
    assert left == [], left


def test_the_verb_answers_the_reads_error_or_says_what_is_left(family) -> None:
    """plugin/run.py read_through_saga: the read's own error when the saga took its snapshot
    back; when it could not, both, and the saga an operator looks at."""
    from zfsaga.plugin.errors import SmapiError
    from zfsaga.plugin.run import read_through_saga

    zfs, fx, ident, state = family

    def broken(facts):
        raise OSError("the send's pipe broke")

    args = (ident.key, fx["sr"], ident.guid, fx["vdi"])
    with pytest.raises(OSError, match="pipe broke"):
        read_through_saga("the count", counting.start, _engine(zfs, state), *args,
                          read=broken, sr=fx["sr"])
    assert _temporary(zfs, fx["vdi"]) == []
    assert read_through_saga("the count", counting.start, _engine(zfs, state), *args,
                             read=lambda facts: b"\x80", sr=fx["sr"]) == b"\x80"

    faults = Faults.parse("fail:destroy_snapshots:permanent", mode="raise")
    zfs.hooks = FaultHooks(faults)
    with pytest.raises(SmapiError) as err:
        read_through_saga("the count", counting.start,
                          _engine(zfs, state, boundary=faults.boundary), *args, read=broken,
                          sr=fx["sr"])
    message = str(err.value)
    assert "the count failed (OSError: the send's pipe broke)" in message
    assert "could not take back what it made for it (stuck" in message
    assert f"zfsaga --sr {fx['sr']} show " in message
