"""The saga engine on the revert saga, in-process: outcomes, retries, compensation, the pivot,
stuck sagas blocking their resource, unknown plans, repeated crashes, ownership. Each test runs
on the model and, marked realzfs, on real ZFS in the guest."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.crash_harness import TOKEN, build_fixture, sr_state
from zfsaga.faults import FaultHooks, Faults, SimulatedCrash
from zfsaga.sagas import volume_revert as revert
from zfsaga.sagas.engine import Engine, SagaBlocked
from zfsaga.state.journal import Journal
from zfsaga.steps.base import OWNER, RETIRED
from zfsaga.steps.zfs.interface import Zfs


class World:
    """A fixture SR, its journal, and an engine whose ZFS calls can be faulted."""

    def __init__(self, zfs: Zfs, root: str, state_dir: Path) -> None:
        self.zfs, self.state_dir = zfs, state_dir
        self.fx = build_fixture(zfs, root)
        self.before = sr_state(zfs, self.fx["sr"])

    def engine(self, faults: str = "", crash_mode: str = "raise") -> Engine:
        f = Faults.parse(faults, mode=crash_mode) if faults else None
        self.zfs.hooks = FaultHooks(f)
        journal = Journal(self.state_dir / "journal.db", boundary=f.boundary if f else None)
        return Engine(self.zfs, journal, self.state_dir, boundary=f.boundary if f else None,
                      retry_sleep=lambda s: None, lock_wait=2)

    def revert(self, engine: Engine, token: str = TOKEN):
        return revert.start(engine, self.fx["sr"], self.fx["vdi"], self.fx["snapshot"], token)

    def state(self):
        return sr_state(self.zfs, self.fx["sr"])


@pytest.fixture
def world(zfs, tmp_path) -> World:
    backend, root = zfs
    return World(backend, root, tmp_path)


def test_revert_reaches_the_snapshot_and_keeps_every_other(world: World) -> None:
    z, sr, vdi = world.zfs, world.fx["sr"], world.fx["vdi"]
    clone_of_s1 = z.get_props(f"{sr}/vm-clone", ["origin"])["origin"].value
    out = world.revert(world.engine())
    assert out.status == "succeeded", out.error
    head = z.get_props(vdi, ["guid", OWNER, "origin"])
    assert head["guid"].value == out.facts["clone"]["guid"]  # the VDI is the clone now
    assert head[OWNER].local == f"{out.saga_id}/clone" and head["origin"].value is None
    assert z.exists(f"{vdi}@s1")  # promote moved s1 to the new head
    aside = f"{vdi}.old-{TOKEN}"
    assert z.get_props(aside, [RETIRED])[RETIRED].local == out.saga_id  # kept for s2
    assert z.exists(f"{aside}@s2")
    assert z.get_props(f"{sr}/vm-clone", ["origin"])["origin"].value == clone_of_s1
    assert z.holds(f"{vdi}@s1") == set()  # the saga's hold is released
    assert z.exists(f"{sr}/other")


def test_revert_keeps_the_vdis_metadata_and_provisioning(world: World) -> None:
    """The new head replaces the VDI: its own user properties and its reservation go with it,
    and the bookkeeping of an earlier saga does not."""
    z, vdi = world.zfs, world.fx["vdi"]
    z.set_props(vdi, {"org.zfsaga:name": "web-01 disk", "com.example:tier": "gold"})
    first = world.revert(world.engine(), token="r1")
    assert first.status == "succeeded", first.error
    second = world.revert(world.engine(), token="r2")
    assert second.status == "succeeded", second.error
    own = z.user_props(vdi)
    assert own.pop(OWNER) == f"{second.saga_id}/clone"
    assert own == {"test:born": "vdi", "test:meta": "vdi metadata",
                   "org.zfsaga:name": "web-01 disk", "com.example:tier": "gold"}
    volsize = z.get_props(vdi, ["volsize"])["volsize"].value
    assert z.get_props(vdi, ["refreservation"])["refreservation"].value == volsize  # thick


def test_transient_failures_are_retried(world: World) -> None:
    engine = world.engine("fail:promote:transient:3,fail:clone:transient:2")
    out = world.revert(engine)
    assert out.status == "succeeded"
    assert all(rule.times == 0 for rule in engine.zfs.hooks.faults.fail_rules)


def test_an_error_after_the_effect_is_seen_as_done(world: World) -> None:
    out = world.revert(world.engine("fail:clone:after-effect"))
    assert out.status == "succeeded"


def test_a_stuck_saga_blocks_its_srs_other_sagas_but_no_create(world: World) -> None:
    """A revert parked at its pivot waits for an operator; meanwhile the SR's other VDIs are
    still created (a new volume touches nothing the stuck saga does)."""
    from zfsaga.sagas import volume_create
    from zfsaga.steps import srs
    from zfsaga.steps.zfs.model import ModelZfs

    if not isinstance(world.zfs, ModelZfs):
        pytest.skip("locking is ZFS-independent: on the model")
    out = world.revert(world.engine("fail:set_props:permanent"))
    assert out.status == "stuck"
    ident = srs.identify(world.zfs, world.fx["sr"])
    made = volume_create.start(world.engine(), ident.key, world.fx["sr"], ident.guid, "new",
                               "", 1 << 20, False, key="n1")
    assert made.status == "succeeded" and world.zfs.exists(f"{world.fx['sr']}/n1")
    with pytest.raises(SagaBlocked, match=out.saga_id):
        world.revert(world.engine(), token="t1")


def test_narrow_sagas_run_side_by_side_and_an_sr_wide_one_excludes_them(tmp_path) -> None:
    from zfsaga.sagas.resources import lock_of
    from zfsaga.state.locks import LockBusy, NestedLock, ResourceLock

    first, second = lock_of(tmp_path, "sr-1/new-a"), lock_of(tmp_path, "sr-1/new-b")
    assert isinstance(first, NestedLock) and isinstance(lock_of(tmp_path, "tank/sr"),
                                                        ResourceLock)
    with first.acquire(1), second.acquire(1):  # two creates at once
        assert not lock_of(tmp_path, "sr-1/new-a").try_acquire()  # but not the same one
        with pytest.raises(LockBusy):
            lock_of(tmp_path, "sr-1").acquire(0.2)  # an SR-wide saga waits for them
        assert lock_of(tmp_path, "sr-2").try_acquire()  # another SR's is its own
    with lock_of(tmp_path, "sr-1").acquire(1):
        with pytest.raises(LockBusy):
            lock_of(tmp_path, "sr-1/new-c").acquire(0.2)  # and they wait for it


def test_permanent_failure_before_the_pivot_compensates(world: World) -> None:
    out = world.revert(world.engine("fail:promote:permanent"))
    assert out.status == "compensated"
    assert "promote" in out.error
    assert world.state() == world.before


def test_failure_at_the_pivot_parks_and_blocks_the_resource(world: World) -> None:
    out = world.revert(world.engine("fail:set_props:permanent"))
    assert out.status == "stuck" and "pivot" in out.error
    with pytest.raises(SagaBlocked, match=out.saga_id):
        world.revert(world.engine(), token="t1")
    engine = world.engine()
    resumed = engine.resume(out.saga_id, reason="operator fixed the pool")
    assert resumed.status == "succeeded"
    events = list(engine.journal.events(out.saga_id))
    assert any(e.type == "operator_resume" and e.data["reason"] == "operator fixed the pool"
               for e in events)


def test_a_failing_compensation_parks_and_abort_finishes_it(world: World) -> None:
    out = world.revert(world.engine("fail:promote:permanent,fail:destroy:permanent"))
    assert out.status == "stuck" and "compensation of clone" in out.error
    done = world.engine().abort(out.saga_id, reason="retry the undo")
    assert done.status == "compensated"
    assert world.state() == world.before


def test_a_foreign_dataset_in_the_way_is_never_destroyed(world: World) -> None:
    z, vdi = world.zfs, world.fx["vdi"]
    squatter = f"{vdi}.revert-{TOKEN}"
    z.create_zvol(squatter, 1 << 20, props={"test:born": "squatter"})
    before = world.state()
    out = world.revert(world.engine())
    assert out.status == "compensated" and "Foreign" in out.error
    assert world.state() == before and z.exists(squatter)


def test_an_unknown_plan_is_parked_not_resumed(world: World) -> None:
    engine = world.engine("crash@zfs:before:promote")
    with pytest.raises(SimulatedCrash):
        world.revert(engine)
    engine.journal.close()
    db = sqlite3.connect(world.state_dir / "journal.db")
    plan = json.loads(db.execute("SELECT plan FROM saga").fetchone()[0])
    plan[4]["version"] = 99
    db.execute("UPDATE saga SET plan=?", (json.dumps(plan),))
    db.commit()
    db.close()
    [out] = world.engine().recover()
    assert out.status == "stuck" and "unknown" in out.error


def test_a_saga_that_keeps_crashing_is_parked(world: World) -> None:
    with pytest.raises(SimulatedCrash):
        world.revert(world.engine("crash@zfs:before:promote"))
    for _ in range(3):
        with pytest.raises(SimulatedCrash):
            world.engine("crash@zfs:before:promote").recover()
    [out] = world.engine().recover()
    assert out.status == "stuck" and "crashed" in out.error
    assert world.engine().recover() == []  # stuck waits for an operator


def test_an_orphan_whose_step_failed_is_compensated_not_retried(world: World) -> None:
    """Died right after recording a permanent failure: recovery undoes, it does not retry."""
    with pytest.raises(SimulatedCrash):
        world.revert(world.engine("fail:promote:permanent,crash@journal:after:step_failed"))
    [out] = world.engine().recover()
    assert out.status == "compensated"
    assert world.state() == world.before


@pytest.mark.realzfs
def test_state_lives_on_the_pool_outside_every_sr(tmp_path, monkeypatch) -> None:
    from tests.conftest import POOL, real_zfs
    from zfsaga.location import META_DATASET, ROLE, sr_state_dir

    monkeypatch.delenv("ZFSAGA_STATE_DIR", raising=False)
    z = real_zfs()
    world = World(z, _fresh_root(z), tmp_path)
    sr = world.fx["sr"]
    path = sr_state_dir(z, sr, create=True)
    meta = f"{sr.split('/')[0]}/{META_DATASET}"
    assert z.get_props(meta, [ROLE])[ROLE].local == "state"
    mounted = z.get_props(meta, ["mountpoint", "mounted"])
    assert mounted["mounted"].value == "yes"  # the layer creates unmounted: location mounts it
    assert str(path).startswith(mounted["mountpoint"].value + "/")
    assert path.name == "sr-" + z.get_props(sr, ["guid"])["guid"].value
    journal = Journal(path / "journal.db")
    engine = Engine(z, journal, path, retry_sleep=lambda s: None)
    out = revert.start(engine, sr, world.fx["vdi"], world.fx["snapshot"])
    assert out.status == "succeeded"
    assert (path / "journal.db").exists() and journal.get(out.saga_id).status == "succeeded"
    journal.close()  # an open journal keeps the state dataset busy (it cannot be unmounted)
    # On the state dataset's own filesystem, not in a directory of the pool's root that the
    # mount would hide.
    pool_root = z.get_props(POOL, ["mountpoint"])["mountpoint"].value
    assert os.stat(path / "journal.db").st_dev == os.stat(mounted["mountpoint"].value).st_dev
    assert os.stat(mounted["mountpoint"].value).st_dev != os.stat(pool_root).st_dev


def test_state_location_mounts_the_state_dataset(monkeypatch) -> None:
    """On the model (no files are written): an unmounted state dataset is mounted, a foreign
    one is refused, and without create nothing is made."""
    from zfsaga.location import META_DATASET, ROLE, state_base
    from zfsaga.steps.zfs.model import ModelZfs

    monkeypatch.delenv("ZFSAGA_STATE_DIR", raising=False)
    z = ModelZfs(pools=("tank",))
    z.create_filesystem("tank/sr")
    with pytest.raises(FileNotFoundError, match="no zfsaga state"):
        state_base(z, "tank/sr")
    assert not z.exists(f"tank/{META_DATASET}")
    assert str(state_base(z, "tank/sr", create=True)) == f"/tank/{META_DATASET}"
    assert z.get_props(f"tank/{META_DATASET}", ["mounted"])["mounted"].value == "yes"
    z.set_props(f"tank/{META_DATASET}", {ROLE: "something-else"})
    with pytest.raises(PermissionError):
        state_base(z, "tank/sr")


def test_a_state_dataset_born_without_its_tag_is_taken_only_when_empty(monkeypatch) -> None:
    """A power cut between the state filesystem's creation and its properties leaves it
    untagged: every call on the pool would be refused for ever. A mutating call tags it when it
    holds nothing; one holding anything, or with a child, stays refused and untouched."""
    from zfsaga import location
    from zfsaga.steps.zfs.model import ModelZfs

    monkeypatch.delenv("ZFSAGA_STATE_DIR", raising=False)
    z = ModelZfs(pools=("tank",))
    z.create_filesystem("tank/sr")
    meta = f"tank/{location.META_DATASET}"
    z.create_filesystem(meta)  # the half-born one: no role
    listing: dict[str, list[str]] = {f"/{meta}": ["journal.db"]}
    monkeypatch.setattr(location, "_entries", lambda path: listing[path])
    with pytest.raises(PermissionError):  # holds a file: not provably ours
        location.state_base(z, "tank/sr", create=True)
    assert z.get_props(meta, [location.ROLE])[location.ROLE].local is None
    listing[f"/{meta}"] = []
    with pytest.raises(PermissionError):  # a read-only call never tags
        location.state_base(z, "tank/sr")
    z.create_filesystem(f"{meta}/child")
    with pytest.raises(PermissionError):  # a child: not provably ours
        location.state_base(z, "tank/sr", create=True)
    z.destroy(f"{meta}/child")
    assert str(location.state_base(z, "tank/sr", create=True)) == f"/{meta}"
    assert z.get_props(meta, [location.ROLE])[location.ROLE].local == "state"


def _fresh_root(z: Zfs) -> str:
    import uuid

    from tests.conftest import POOL
    root = f"{POOL}/s{uuid.uuid4().hex[:10]}"
    z.create_filesystem(root)
    return root


def test_a_clone_step_recorded_without_props_or_reserve_still_runs() -> None:
    """Plans frozen before `props` and `reserve` existed name neither: the step falls back to a
    sparse clone carrying only its ownership tag."""
    from zfsaga.steps.base import StepContext
    from zfsaga.steps.clone import CloneSnapshot
    from zfsaga.steps.zfs.model import ModelZfs

    z = ModelZfs(pools=("tank",))
    z.create_filesystem("tank/sr")
    z.create_zvol("tank/sr/v", 1 << 20, sparse=False, props={"org.zfsaga:name": "v"})
    z.snapshot(["tank/sr/v@s1"])
    guid = z.get_props("tank/sr/v@s1", ["guid"])["guid"].value
    ctx = StepContext(z, "saga1", {"sr": "tank/sr"})
    step = CloneSnapshot("clone", snapshot_guid=guid, snapshot="tank/sr/v@s1", target="tank/sr/c")
    assert step.run(ctx)["name"] == "tank/sr/c"
    assert z.user_props("tank/sr/c") == {OWNER: "saga1/clone"}
    assert z.get_props("tank/sr/c", ["refreservation"])["refreservation"].value == "0"
