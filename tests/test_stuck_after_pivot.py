"""A saga that fails after its pivot, through the installed entry points on the file-shared
model: the verb's effect took place, so the verb answers success (and its normal result);
the cleanup left is logged naming the saga and the command that finishes it, listed by
`zfsaga list` as stuck, and finished by the operator's resume or by the SR's next saga. A
failure before the pivot still answers the error, and its stuck saga still blocks the SR."""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import POOL
from tests.xapi_daemon import Daemon, ScriptError
from zfsaga.steps.zfs.shared_model import SharedModelZfs


class Model:
    def __init__(self, destdir: Path, tmp: Path, provisioning: str = "thin") -> None:
        path = tmp / "pool.model"
        self.destdir = destdir
        self.env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(tmp / "state"),
                    "ZFSAGA_ZFS": f"model:{path}", "ZFSAGA_MODEL_POOLS": POOL}
        self.zfs = SharedModelZfs(path, pools=(POOL,))
        self.zfs.create_filesystem(f"{POOL}/p")
        self.zfs.create_filesystem(f"{POOL}/p/sr")
        self.xapi = Daemon(destdir, "zfsaga", self.env)
        config = self.xapi.call("SR.create", uuid=str(uuid.uuid4()), name="s", description="",
                                configuration={"dataset": f"{POOL}/p/sr",
                                               "provisioning": provisioning})
        self.sr = self.xapi.call("SR.attach", configuration=config)

    def faulty(self, faults: str) -> Daemon:
        return Daemon(self.destdir, "zfsaga", {**self.env, "ZFSAGA_FAULTS": faults})

    def volume(self, name: str = "v") -> str:
        return self.xapi.call("Volume.create", sr=self.sr, name=name, description="",
                              size=1 << 20, sharable=False)["key"]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.destdir / "usr/sbin/zfsaga"), "--sr", self.sr, *args],
                              capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/sbin:/usr/bin:/bin", **self.env})

    def active(self) -> list[dict]:
        out = self.cli("--json", "list")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def listed(self) -> list[str]:
        return sorted(v["key"] for v in self.xapi.call("SR.ls", sr=self.sr))

    def guid(self, key: str) -> str:
        return self.zfs.get_props(f"{self.sr}/{key}", ["guid"])["guid"].value


def stuck_one(m: Model, kind: str, stderr: str) -> str:
    """The one active saga: stuck, of `kind`, and named with its resume command in the
    verb's log."""
    (saga,) = m.active()
    assert (saga["kind"], saga["status"]) == (kind, "stuck"), saga
    assert f"zfsaga --sr {m.sr} resume {saga['id']}" in stderr, stderr
    return saga["id"]


def resume(m: Model, saga_id: str) -> None:
    out = m.cli("resume", saga_id, "--reason", "test", "--yes")
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert m.active() == []


@pytest.fixture
def m(destdir: Path, tmp_path: Path) -> Model:
    return Model(destdir, tmp_path)


def test_a_revert_whose_hold_release_fails_answers_success(m: Model) -> None:
    key = m.volume()
    snap = m.xapi.call("Volume.snapshot", sr=m.sr, key=key)["key"]
    before = m.guid(key)
    out = m.faulty("fail:release:permanent").raw(
        "Volume.revert", json.dumps({"dbg": "t", "sr": m.sr, "key": key, "snapshot": snap}))
    assert out.returncode == 0 and json.loads(out.stdout) is None, out.stdout
    assert m.guid(key) != before  # the VDI is the snapshot's clone now: the after-state
    assert m.listed() == sorted([key, snap])
    saga = stuck_one(m, "volume.revert", out.stderr)
    assert m.zfs.holds(f"{m.sr}/{snap}")  # the cleanup left: the revert's hold
    resume(m, saga)
    assert not m.zfs.holds(f"{m.sr}/{snap}") and m.listed() == sorted([key, snap])


def test_a_revert_whose_old_head_cannot_be_retired_answers_success(m: Model) -> None:
    """The pivot itself (retiring the old head) fails: the promote already made the VDI the
    snapshot's clone, so the revert took place; the old head is cleanup (sagas/volume_revert.py
    EFFECT)."""
    key = m.volume()
    snap = m.xapi.call("Volume.snapshot", sr=m.sr, key=key)["key"]
    before = m.guid(key)
    out = m.faulty("fail:destroy:permanent").raw(
        "Volume.revert", json.dumps({"dbg": "t", "sr": m.sr, "key": key, "snapshot": snap}))
    assert out.returncode == 0 and json.loads(out.stdout) is None, out.stdout
    assert m.guid(key) != before and m.listed() == sorted([key, snap])
    saga = stuck_one(m, "volume.revert", out.stderr)
    resume(m, saga)
    assert m.listed() == sorted([key, snap])
    assert [n for n in m.zfs.list_tree(m.sr, ["guid"]) if ".old-" in n] == []


def test_a_snapshot_destroy_whose_collection_fails_answers_success(m: Model) -> None:
    key, other = m.volume(), m.volume("w")
    snap = m.xapi.call("Volume.snapshot", sr=m.sr, key=key)["key"]
    m.xapi.call("Volume.destroy", sr=m.sr, key=key)  # kept retired: its snapshot lives
    assert m.zfs.exists(f"{m.sr}/{key}")
    out = m.faulty("fail:destroy:permanent").raw(
        "Volume.destroy", json.dumps({"dbg": "t", "sr": m.sr, "key": snap}))
    assert out.returncode == 0 and json.loads(out.stdout) is None, out.stdout
    assert m.listed() == [other] and not m.zfs.exists(f"{m.sr}/{snap}")
    stuck_one(m, "volume.destroy", out.stderr)
    assert m.zfs.exists(f"{m.sr}/{key}")  # the cleanup left: the retired head
    # The SR's next saga finishes it first, then does its own work.
    m.xapi.call("Volume.set_name", sr=m.sr, key=other, new_name="next")
    assert m.active() == [] and not m.zfs.exists(f"{m.sr}/{key}")
    assert m.xapi.call("Volume.stat", sr=m.sr, key=other)["name"] == "next"


def test_a_clone_whose_base_release_fails_answers_with_the_clone(m: Model) -> None:
    key = m.volume()
    out = m.faulty("fail:destroy_snapshots:permanent").raw(
        "Volume.clone", json.dumps({"dbg": "t", "sr": m.sr, "key": key}))
    assert out.returncode == 0, out.stdout
    clone = json.loads(out.stdout)
    assert clone["key"] != key and clone["read_write"]
    assert m.xapi.call("Volume.stat", sr=m.sr, key=clone["key"]) == clone
    assert m.listed() == sorted([key, clone["key"]])
    saga = stuck_one(m, "volume.clone", out.stderr)
    resume(m, saga)
    assert m.listed() == sorted([key, clone["key"]])


def test_a_failure_before_the_pivot_still_answers_the_error(m: Model) -> None:
    key = m.volume()
    snap = m.xapi.call("Volume.snapshot", sr=m.sr, key=key)["key"]
    before = m.guid(key)
    with pytest.raises(ScriptError) as err:  # compensated: nothing happened
        m.faulty("fail:promote:permanent").call("Volume.revert", sr=m.sr, key=key,
                                                snapshot=snap)
    assert "did not happen" in err.value.params[1] and m.guid(key) == before
    assert m.active() == []
    with pytest.raises(ScriptError) as err:  # stuck compensating: not done, and said so
        m.faulty("fail:clone:permanent,fail:destroy_snapshots:permanent").call(
            "Volume.clone", sr=m.sr, key=key)
    assert "did not happen" in err.value.params[1] and "stuck" in err.value.params[1]
    assert [s["status"] for s in m.active()] == ["stuck"]
    with pytest.raises(ScriptError) as err:  # it blocks the SR until an operator acts
        m.xapi.call("Volume.set_name", sr=m.sr, key=key, new_name="x")
    assert err.value.name == "Busy" and m.listed() == sorted([key, snap])


def test_a_thick_revert_that_cannot_reserve_blocks_nothing(destdir: Path, tmp_path: Path,
                                                           monkeypatch) -> None:
    """A thick VDI is thin between the revert's retire and its reserve; when the pool fills
    in that window the reserve fails after the effect. The revert answers success, the saga
    is set aside (listed, stuck in its reserve), and the SR's other verbs run: above all the
    destroy an admin makes to free space. Once space is back, the operator's resume, or the
    SR's next saga a minute later, reserves the VDI."""
    from zfsaga.sagas import engine as engine_module

    m = Model(destdir, tmp_path, provisioning="thick")
    key, other = m.volume(), m.volume("w")
    snap = m.xapi.call("Volume.snapshot", sr=m.sr, key=key)["key"]
    out = m.faulty("fail:reserve:permanent").raw(
        "Volume.revert", json.dumps({"dbg": "t", "sr": m.sr, "key": key, "snapshot": snap}))
    assert out.returncode == 0 and json.loads(out.stdout) is None, out.stdout
    reserved = lambda: m.zfs.get_props(f"{m.sr}/{key}", ["refreservation"])[
        "refreservation"].value not in (None, "0")
    assert not reserved()  # thin for now: said by zfsaga list
    saga = stuck_one(m, "volume.revert", out.stderr)
    # The pool still full (the reserve still fails): not Busy. The destroy that frees space
    # runs, then every other verb, more than once.
    full = m.faulty("fail:reserve:permanent")
    full.call("Volume.destroy", sr=m.sr, key=other)
    full.call("Volume.set_name", sr=m.sr, key=key, new_name="still thin")
    full.call("Volume.snapshot", sr=m.sr, key=key)
    [row] = m.active()
    assert row["id"] == saga and row["status"] == "stuck" and "cleanup-" in row["resource"]
    assert not reserved() and len(m.listed()) == 3
    resume(m, saga)
    assert reserved() and not m.zfs.holds(f"{m.sr}/{snap}")


def test_the_next_saga_retries_a_set_aside_reserve(destdir: Path, tmp_path: Path) -> None:
    """Without an operator: a saga of the SR past the retry interval reserves the VDI."""
    m = Model(destdir, tmp_path, provisioning="thick")
    key = m.volume()
    snap = m.xapi.call("Volume.snapshot", sr=m.sr, key=key)["key"]
    out = m.faulty("fail:reserve:permanent").raw(
        "Volume.revert", json.dumps({"dbg": "t", "sr": m.sr, "key": key, "snapshot": snap}))
    assert out.returncode == 0, out.stdout
    m.faulty("fail:reserve:permanent").call("Volume.set_name", sr=m.sr, key=key,
                                            new_name="a")  # still full: sets it aside
    [row] = m.active()
    assert "cleanup-" in row["resource"]
    m.xapi.call("Volume.set_name", sr=m.sr, key=key, new_name="b")  # within the minute
    assert [r["id"] for r in m.active()] == [row["id"]]
    # A minute on: the saga's last update moved back, as the clock would have moved on.
    import sqlite3
    [journal] = Path(m.env["ZFSAGA_STATE_DIR"]).glob("**/journal.db")
    db = sqlite3.connect(journal)
    db.execute("UPDATE saga SET updated = updated - 61 WHERE id = ?", (row["id"],))
    db.commit()
    db.close()
    m.xapi.call("Volume.set_name", sr=m.sr, key=key, new_name="c")
    assert m.active() == []
    got = m.zfs.get_props(f"{m.sr}/{key}", ["refreservation"])["refreservation"].value
    assert got not in (None, "0") and not m.zfs.holds(f"{m.sr}/{snap}")


def test_sr_destroy_finishes_a_set_aside_cleanup_first(destdir: Path, tmp_path: Path) -> None:
    """xapi's teardown within the minute after a set-aside reserve: the VDIs are destroyed,
    then SR.destroy. While the cleanup cannot finish, SR.destroy is Busy (what the cleanup
    holds, the revert's hold and the retired head, would outlive the SR out of every
    operator's reach); once it can, SR.destroy finishes it first and leaves nothing."""
    m = Model(destdir, tmp_path, provisioning="thick")
    key = m.volume()
    snap = m.xapi.call("Volume.snapshot", sr=m.sr, key=key)["key"]
    full = m.faulty("fail:reserve:permanent")
    full.call("Volume.revert", sr=m.sr, key=key, snapshot=snap)
    full.call("Volume.destroy", sr=m.sr, key=snap)  # sets the revert aside
    full.call("Volume.destroy", sr=m.sr, key=key)
    # With the VDI gone there is nothing left to reserve, but the cleanup still cannot
    # release its hold: SR.destroy waits for it.
    with pytest.raises(ScriptError) as err:
        m.faulty("fail:release:permanent").call("SR.destroy", sr=m.sr)
    assert err.value.name == "Busy" and "volume.revert" in err.value.params[1]
    assert m.zfs.user_props(m.sr) and [s["kind"] for s in m.active()] == ["volume.revert"]
    m.xapi.call("SR.destroy", sr=m.sr)  # the hold can go: the cleanup, then the SR
    assert list(m.zfs.list_tree(m.sr, ["guid"])) == [m.sr] and m.zfs.user_props(m.sr) == {}
