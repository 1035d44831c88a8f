"""Volume.revert as xapi calls it (VDI.revert, declared by VDI_REVERT): the VDI takes the
contents of ANY of its snapshots and keeps its key; every other snapshot stays listed,
readable through the datapath and destroyable, in any sequence of reverts; nothing is left
behind once everything is destroyed. On the model (identity, listing, lookups) and, marked
realzfs, on real ZFS with the data checked by checksum through Datapath.attach's device."""
from __future__ import annotations

import pytest

from tests.test_plugin_verbs import Host, host, real_host  # noqa: F401 (fixtures)
from tests.xapi_daemon import Disks
from zfsaga.steps.zfs.shared_model import SharedModelZfs

MiB = 1 << 20


def _listed(host: Host, sr: str) -> list[str]:
    return sorted(v["key"] for v in host.xapi.call("SR.ls", sr=sr))


def test_plugin_query_declares_vdi_revert(destdir, tmp_path) -> None:
    from tests.xapi_daemon import Daemon

    query = Daemon(destdir, "zfsaga", {"ZFSAGA_SYSLOG": "0"}).call("Plugin.query")
    assert "VDI_REVERT" in query["features"]


def test_volume_revert_to_any_snapshot_keeps_every_key(host: Host, tmp_path) -> None:
    real = not isinstance(host.zfs, SharedModelZfs)
    sr, call = host.sr(), host.xapi.call
    disks = Disks(host, tmp_path / "run") if real else None
    v = call("Volume.create", sr=sr, name="V", description="the disk", size=4 * MiB,
             sharable=False)
    key = v["key"]
    call("Volume.set", sr=sr, key=key, k="vdi-type", v="user")
    data, snaps = {}, []
    for i in range(1, 4):
        if disks:
            data[f"s{i}"] = disks.write(sr, key, f"version {i}")
        snaps.append(call("Volume.snapshot", sr=sr, key=key)["key"])
    head = disks.write(sr, key, "version 4") if disks else None
    by_name = dict(zip(["s1", "s2", "s3"], snaps))
    # Not only the latest: the oldest first (s2 and s3 are left on the retired head), then
    # one of those, then back and forth. The real tier runs the first two (the two kinds of
    # revert: from the VDI's own snapshot, from a retired head's) and reads every snapshot's
    # device once, at the end: a process per call costs seconds in the emulated guest.
    sequence = ["s1", "s3", "s2", "s1", "s3", "s3"]
    for target in sequence[:2] if real else sequence:
        assert call("Volume.revert", sr=sr, snapshot=by_name[target], key=key) is None
        after = call("Volume.stat", sr=sr, key=key)
        assert (after["key"], after["name"], after["description"]) == (key, "V", "the disk")
        assert after["keys"] == {"vdi-type": "user"} and after["read_write"]
        assert after["uri"] == v["uri"]  # the VDI's device is where xapi last saw it
        listed = host.xapi.call("SR.ls", sr=sr)
        assert sorted(x["key"] for x in listed) == sorted([key, *snaps])  # each exactly once
        assert all(not x["read_write"] for x in listed if x["key"] in snaps)
        if disks:
            assert disks.read(sr, key) == data[target]
            assert disks.read(sr, key) != head
    for name, snap in by_name.items():
        assert call("Volume.stat", sr=sr, key=snap)["key"] == snap
        if disks:  # every snapshot still reads as it was taken, wherever it lives now
            assert disks.read(sr, snap) == data[name], name
    with pytest.raises(Exception) as err:  # a snapshot of another VDI is refused
        other = call("Volume.create", sr=sr, name="W", description="", size=MiB,
                     sharable=False)["key"]
        call("Volume.revert", sr=sr, snapshot=snaps[0], key=other)
    assert "not a snapshot of" in str(err.value)
    call("Volume.destroy", sr=sr, key=other)
    # Destroy in an order that needs the hidden heads: the VDI first, then its snapshots.
    for k in [key, snaps[1], snaps[0], snaps[2]]:
        call("Volume.destroy", sr=sr, key=k)
    assert _listed(host, sr) == []
    left = [n for n in host.zfs.list_tree(sr, ["type"]) if n != sr]
    assert left == []  # no head, retired head or snapshot left behind
    index = [p for p in host.zfs.user_props(sr) if p.startswith("org.zfsaga:at:")]
    assert index == []  # each destroy took its snapshot out of the index


def test_revert_refuses_what_is_not_a_volume_and_its_snapshot(host: Host) -> None:
    if not isinstance(host.zfs, SharedModelZfs):
        pytest.skip("on the model (real ZFS: bad input on every verb is in test_plugin_verbs)")
    sr, call = host.sr(), host.xapi.call
    v = call("Volume.create", sr=sr, name="V", description="", size=MiB, sharable=False)
    s = call("Volume.snapshot", sr=sr, key=v["key"])
    before = host.zfs_state()
    cases = [(v["key"], v["key"]), (s["key"], s["key"]), ("no-such@x", v["key"]),
             (s["key"], "no-such-key"), (s["key"], "../x"), ("a;rm -rf /", v["key"])]
    real = not isinstance(host.zfs, SharedModelZfs)
    for snapshot, key in cases[:3] if real else cases:  # all on the model
        with pytest.raises(Exception):
            call("Volume.revert", sr=sr, snapshot=snapshot, key=key)
    assert host.zfs_state() == before


def test_finding_a_key_costs_the_same_at_any_sr_size() -> None:
    """Volume.stat's lookup: one read at home, three for a snapshot a revert moved, at 10 and
    at 400 VDIs, and never a listing of the SR (counted on the model)."""
    from zfsaga.plugin.context import Sr
    from zfsaga.sagas import volume_create, volume_revert as revert, volume_snapshot
    from zfsaga.sagas.engine import Engine
    from zfsaga.state.journal import Journal
    from zfsaga.steps import srs
    from zfsaga.steps.zfs.model import ModelZfs
    from zfsaga.steps.zfs.interface import ZfsHooks
    import tempfile
    from pathlib import Path

    class Counting(ZfsHooks):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[str] = []

        def before(self, op: str, name: str, mutating: bool) -> None:
            super().before(op, name, mutating)
            self.ops.append(op)

    costs = {}
    for size in (10, 400):
        zfs = ModelZfs(pools=("tank",))
        zfs.create_filesystem("tank/sr")
        ident = srs.adopt(zfs, "tank/sr")
        with tempfile.TemporaryDirectory() as tmp:
            engine = Engine(zfs, Journal(Path(tmp) / "journal.db"), Path(tmp))
            keys = []
            for i in range(size):
                out = volume_create.start(engine, ident.key, "tank/sr", ident.guid, f"v{i}",
                                          "", MiB, False, key=f"k{i}")
                keys.append(out.facts["create"]["name"].rsplit("/", 1)[1])
            vol = f"tank/sr/{keys[0]}"
            snaps = [volume_snapshot.start(engine, ident.key, "tank/sr", ident.guid, vol,
                                           snap=f"s{j}").facts["snapshot"]["name"]
                     for j in range(3)]
            revert.start(engine, "tank/sr", vol, snaps[0])
            engine.journal.close()
        reader = Sr(zfs, "tank/sr", ident.guid)
        cost = {}
        for what, key in [("volume", keys[-1]), ("snapshot at home", f"{keys[0]}@s0"),
                          ("snapshot moved", f"{keys[0]}@s2")]:
            zfs.hooks = counting = Counting()
            name, _, _ = reader.find(key)
            assert name.endswith(key.partition("@")[2])
            cost[what] = counting.ops
        costs[size] = cost
        zfs.hooks = ZfsHooks()
    assert costs[10] == costs[400]
    assert costs[10]["volume"] == ["describe"]
    assert costs[10]["snapshot moved"] == ["describe", "get_props", "describe"]
    assert all("list_tree" not in ops for ops in costs[400].values())
