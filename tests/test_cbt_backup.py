"""A backup tool's loop over changed block tracking (issue 21), ten rounds on real ZFS, all
through the installed entry points as xapi calls them: each round the VM writes, the tool
snapshots, asks Volume.list_changed_blocks against the last round's metadata-only snapshot,
copies just the marked blocks from the new snapshot's read-only device (Datapath.attach) onto
a replica file, and data-destroys the snapshot; the replica's checksum equals the snapshot's
after every round, one of them after the SR's pool was exported and imported again.

The SR has a pool of its own (SR.create on a file vdev): SR.detach exports it and SR.attach
imports it as on another host or after a reboot, which the shared test pool could not do
without taking the whole real tier's datasets with it. The host-side check of the tool itself
(no ZFS) runs on every host."""
from __future__ import annotations

import base64
import hashlib
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.cbt_backup import G, Vm, checksum, copy_blocks, incremental, marked
from tests.xapi_daemon import Daemon, Disks

MiB = 1 << 20
SIZE = 16 * MiB
ROUNDS = 10
#: The round that follows an export and import of the SR's pool.
REIMPORTED = 5


def test_the_tool_copies_only_marked_blocks_and_a_missed_block_shows(tmp_path: Path) -> None:
    """The tool on plain files: copying the blocks a round touched makes the replica equal
    the source; leaving one out does not (the loop's checksum catches a missing bit)."""
    size = 2 * MiB
    source, replica = str(tmp_path / "disk"), str(tmp_path / "replica")
    Path(source).write_bytes(bytes(size))
    vm = Vm(size, seed=3)
    vm.fill(source)
    assert copy_blocks(source, replica, None, size) == size
    before = bytes(vm.mirror)
    touched = vm.round(source, 2)  # writes and zeroes (a discard needs a block device)
    assert touched == vm.changed_since(before) and touched
    bits = bytearray(size // G // 8)  # xapi's bitmap: block i is bit 0x80 >> i % 8 of byte i // 8
    for block in touched:
        bits[block // 8] |= 0x80 >> block % 8
    assert marked({"bitmap": base64.b64encode(bits).decode()}) == touched
    left_out = min(touched)
    copy_blocks(source, replica, touched - {left_out}, size)
    assert checksum(replica, size) != checksum(source, size)
    assert copy_blocks(source, replica, {left_out}, size) == G
    assert checksum(replica, size) == checksum(source, size) \
        == hashlib.sha256(vm.mirror).hexdigest()


@pytest.mark.realzfs
def test_ten_backup_rounds_keep_the_replica_equal_to_each_snapshot(request, destdir,
                                                                   tmp_path) -> None:
    from tests.conftest import real_zfs, summary_line
    from tests.test_plugin_verbs import Host

    zfs = real_zfs()
    env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(tmp_path / "state"),
           "ZFSAGA_HOST_STATE_DIR": str(tmp_path / "host")}
    xapi = Daemon(destdir, "zfsaga", env)
    call = xapi.call
    vdev, pool = tmp_path / "vdev", f"zfsagacbt{uuid.uuid4().hex[:6]}"
    with open(vdev, "wb") as f:
        f.truncate(128 * MiB)
    config = call("SR.create", uuid=str(uuid.uuid4()), name="backed up", description="",
                  configuration={"devices": str(vdev), "pool": pool, "compression": "lz4"})
    try:
        sr = call("SR.attach", configuration=config)
        disks = Disks(Host(zfs, sr, xapi), tmp_path / "run")
        vol = call("Volume.create", sr=sr, name="VM disk", description="", size=SIZE,
                   sharable=False)["key"]
        call("Volume.enable_cbt", sr=sr, key=vol)
        vm = Vm(SIZE, seed=21)
        vm.fill(disks.device(sr, vol))
        replica = str(tmp_path / "replica")
        last = None
        for r in range(ROUNDS):
            if r == REIMPORTED:
                # xapi's SR.detach of an SR on its own pool exports it; SR.attach imports it
                # (another host, a reboot); sr-scan (SR.ls) then finds the history kept.
                assert call("SR.detach", sr=sr) is None
                assert zfs.pool_guid(pool) is None
                assert call("SR.attach", configuration=config) == sr
                listed = {v["key"]: v for v in call("SR.ls", sr=sr)}
                assert listed[last]["volume_type"] == ["CBT_Metadata", None]
                assert listed[last]["cbt_enabled"] is True
                assert listed[vol]["cbt_enabled"] is True
            before = bytes(vm.mirror)
            touched = vm.round(disks.device(sr, vol), r) if r else set()
            snap = call("Volume.snapshot", sr=sr, key=vol)["key"]
            source = disks.device(sr, snap)  # the snapshot's read-only device
            if last is None:  # round 0: the first, full backup
                blocks = None
                copied = copy_blocks(source, replica, None, SIZE)
            else:
                blocks = incremental(call, sr, last, snap, source, replica, SIZE)
                copied = len(blocks) * G
                assert not touched - blocks, f"round {r}: blocks written, not marked: " \
                                             f"{sorted(touched - blocks)}"
                assert not vm.changed_since(before) - blocks, f"round {r}"
            want = checksum(source, SIZE)
            assert want == hashlib.sha256(vm.mirror).hexdigest(), f"round {r}: the device"
            got = checksum(replica, SIZE)
            summary_line(request, f"CBT backup round {r}"
                                  f"{' (after export+import)' if r == REIMPORTED else ''}: "
                                  f"{len(touched)} blocks written, "
                                  f"{'all' if blocks is None else len(blocks)} marked, "
                                  f"{copied // G} copied, replica sha256 {got[:16]} "
                                  f"{'=' if got == want else '!='} snapshot's {want[:16]}")
            assert got == want, f"round {r}: the replica differs from its snapshot"
            call("Volume.data_destroy", sr=sr, key=snap)
            call("Volume.set", sr=sr, key=snap, k="vdi-type", v="cbt_metadata")  # as xapi
            last = snap
        records = call("SR.ls", sr=sr)  # volume_type: only a metadata-only VDI's record has it
        kept = [v for v in records if v.get("volume_type") == ["CBT_Metadata", None]]
        assert len(kept) == ROUNDS and all(v["cbt_enabled"] for v in kept)
    finally:
        subprocess.run(["zpool", "destroy", "-f", pool], capture_output=True)
