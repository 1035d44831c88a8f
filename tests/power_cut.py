"""The whole guest dies at once (issue 9, part 2): the guest's side. The host
(tests/test_power_cut.py) boots the guest, which runs this; it kills QEMU itself (no shutdown,
no sync) at the moment this side names, boots again on the same disk images, and this side,
as a host after a reboot would, imports the pool, lets the SR's first call recover, and checks.

One boot does, in order:
  --check: the previous boot's cut (its fixture, before- and after-state, checksums, given
      base64-pickled in ZFSAGA_CUT_SEGMENT): import the pool, note whether the journal still
      held the saga active (did the cut interrupt it?), recover, check, write result.json;
      then destroy the pool.
  --start KIND[:N] --at LABEL|random:SECONDS|within:FRACTION: a fresh pool on the first
      spare disk, a
      reference copy of scenario N of saga KIND run to its end (its after-state and
      checksums), the scenario's own fixture (saved as segment.b64), synced; then the saga,
      which at the first boundary whose label starts with LABEL writes `cut` to the out share
      and waits to be killed. With random:S it writes `armed` and runs; the host kills it S
      seconds later, wherever it is; within:F is random:S with S that fraction of the time
      the reference run of the saga took.
  --cbt-start, then --cbt-check: changed block tracking across a cut (issue 21): a backup
      tool's rounds 0 and 1, then the VM writing until the cut; after it, the tool's next
      round (see cbt_start and cbt_check).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

from tests.crash_harness import sr_state
from tests.power_harness import (MOUNT, POOL, DataWriter, Segment, data_sums, fault_disks,
                                 recover_and_check, run, state_dir)
from zfsaga.faults import FaultHooks, Faults
from zfsaga.sagas.engine import Engine
from zfsaga.state.journal import Journal
from zfsaga.steps.zfs.interface import Zfs

OUT = Path(os.environ.get("ZFSAGA_CUT_OUT", "/run/out"))


def scenario(spec: str):
    from tests.saga_scenarios import SCENARIOS

    kind, _, n = spec.partition(":")
    return SCENARIOS[kind][int(n or 0)]


def build(zfs: Zfs, sc, root: str) -> dict[str, str]:
    zfs.hooks = DataWriter(root)
    try:
        zfs.create_filesystem(root)
        return sc.build(zfs, root)
    finally:
        zfs.hooks = FaultHooks(None)


FIELDS = ("fixture", "before", "after", "sums_before", "sums_after")


def check(zfs: Zfs, blob: str) -> dict:
    saved = pickle.loads(base64.b64decode(blob))
    seg = Segment(scenario(saved["spec"]), **{k: saved[k] for k in FIELDS})
    run("zpool", "import", "-o", "cachefile=none", "-d", "/dev", POOL)
    sr = seg.fixture["sr"]
    journal = Journal(state_dir(zfs, sr) / "journal.db", readonly=True)
    try:
        active = [row.status for row in journal.list() if not row.terminal]
    finally:
        journal.close()
    problems, status = recover_and_check(zfs, seg)
    run("zpool", "destroy", POOL)
    return {"scenario": seg.scenario.kind, "interrupted": bool(active), "active": active,
            "status": status, "problems": problems}


def arm(at: str) -> None:
    """Tell the host when to cut, in one rename: it polls the file."""
    (OUT / "armed.tmp").write_text(at)
    (OUT / "armed.tmp").rename(OUT / "armed")


def start(zfs: Zfs, spec: str, at: str) -> None:
    sc = scenario(spec)
    pool_disk = fault_disks()[0]
    run("zpool", "create", "-f", "-o", "cachefile=none", "-m", MOUNT, "-O", "snapdev=visible",
        POOL, pool_disk)
    # The reference: the same fixture, its saga run to the end, gives the after-state.
    ref = build(zfs, sc, f"{POOL}/ref")
    ref_state = state_dir(zfs, ref["sr"])
    journal = Journal(ref_state / "journal.db")
    began = time.monotonic()
    try:
        sc.start(Engine(zfs, journal, ref_state), ref)
    finally:
        journal.close()
    took = time.monotonic() - began
    fixture = build(zfs, sc, f"{POOL}/s0")
    state = state_dir(zfs, fixture["sr"])
    seg = Segment(sc, fixture, sr_state(zfs, fixture["sr"]))
    seg.sums_before = data_sums(seg.before, fixture["sr"])
    seg.after = sr_state(zfs, ref["sr"])
    seg.sums_after = data_sums(seg.after, ref["sr"])
    saved = {"spec": spec, **{k: getattr(seg, k) for k in FIELDS}}
    (OUT / "segment.b64").write_text(base64.b64encode(pickle.dumps(saved)).decode())
    run("sync")  # the fixture is on disk before the saga, as on a host

    faults = Faults(mode="raise")
    if at.startswith("within:"):
        # A moment inside the saga: a fraction of what the reference run of it took.
        arm(f"random:{float(at.split(':')[1]) * took:.2f}")
    elif at.startswith("random:"):
        arm(at)
    else:
        def boundary(label: str, _seen=faults.boundary) -> None:
            if label.startswith(at):
                (OUT / "cut").write_text(label)
                time.sleep(600)  # the host kills the guest here
        faults.boundary = boundary  # type: ignore[method-assign]
    zfs.hooks = FaultHooks(faults)
    journal = Journal(state / "journal.db", boundary=faults.boundary)
    try:
        sc.start(Engine(zfs, journal, state, boundary=faults.boundary), fixture)
    finally:
        journal.close()
    (OUT / "finished").write_text("the saga ended before the cut")
    time.sleep(600)


# -- a changed-block-tracking backup round across a power cut (issue 21) -----------------------
CBT_SIZE = 16 << 20
CBT_POOL = "zfsagacbtpc"
CBT_SEED = 2121


def cbt_xapi():
    """The plugin installed in the guest (its root is a throwaway overlay) and the calls
    xapi-storage-script would make to it; the SR's journal on its own pool, as on a host."""
    import tempfile

    from tests.entry_server import install_tree
    from tests.xapi_daemon import Daemon

    dest = install_tree(Path(tempfile.mkdtemp(prefix="zfsaga-install-")))
    return Daemon(dest, "zfsaga", {"ZFSAGA_SYSLOG": "0",
                                   "ZFSAGA_HOST_STATE_DIR": "/run/zfsaga-host"})


def cbt_disks(xapi, sr: str):
    from tests.test_plugin_verbs import Host
    from tests.xapi_daemon import Disks

    return Disks(Host(None, sr, xapi), Path("/run/zfsaga-dp"))


def cbt_start() -> None:
    """Boot 1: an SR on a pool of its own (the first spare disk), a CBT volume written whole,
    the backup loop's round 0 (a full copy onto the replica, the second spare disk) and round 1
    (incremental), each snapshot data-destroyed after its copy; then the VM writes until the
    host cuts the power, counting its durable writes on the third spare disk."""
    from tests.cbt_backup import Vm, checksum, copy_blocks, incremental
    from tests.stream_fixtures import write

    pool_disk, replica, log = fault_disks()
    xapi = cbt_xapi()
    call = xapi.call
    config = call("SR.create", uuid="5a0c8b1e-0000-4000-8000-000000000021", name="cbt",
                  description="", configuration={"devices": pool_disk, "pool": CBT_POOL,
                                                 "compression": "lz4"})
    sr = call("SR.attach", configuration=config)
    disks = cbt_disks(xapi, sr)
    vol = call("Volume.create", sr=sr, name="VM disk", description="", size=CBT_SIZE,
               sharable=False)["key"]
    call("Volume.enable_cbt", sr=sr, key=vol)
    vm = Vm(CBT_SIZE, CBT_SEED)
    vm.fill(disks.device(sr, vol))
    s0 = call("Volume.snapshot", sr=sr, key=vol)["key"]
    copy_blocks(disks.device(sr, s0), replica, None, CBT_SIZE)
    call("Volume.data_destroy", sr=sr, key=s0)
    print(f"round 0: full copy, replica sha256 {checksum(replica, CBT_SIZE)[:16]}", flush=True)
    touched = vm.round(disks.device(sr, vol), 1)
    s1 = call("Volume.snapshot", sr=sr, key=vol)["key"]
    source = disks.device(sr, s1)
    blocks = incremental(call, sr, s0, s1, source, replica, CBT_SIZE)
    got, want = checksum(replica, CBT_SIZE), checksum(source, CBT_SIZE)
    print(f"round 1: {len(touched)} blocks written, {len(blocks)} marked, replica sha256 "
          f"{got[:16]}, S1's {want[:16]}", flush=True)
    assert touched <= blocks and got == want, "round 1"
    call("Volume.data_destroy", sr=sr, key=s1)
    write(log, 0, bytes(4096))  # no write counted yet
    (OUT / "cbt.json").write_text(json.dumps({"config": config, "sr": sr, "vol": vol,
                                              "last": s1}))
    run("sync")
    dev = disks.device(sr, vol)
    arm("random:4")  # the host cuts the power 4 s into the writes
    vm.write_until_cut(dev, log)


def cbt_check(saved: dict) -> dict:
    """Boot 2, as a host after the cut: xapi's SR.attach imports the pool, the VM's disk is
    attached again, and the backup tool's next round runs: snapshot S2, the blocks changed
    since the metadata-only S1 copied onto the replica, whose checksum must then be S2's.
    Every write the log counts as durable is in a marked block and in S2's data."""
    from itertools import islice

    from tests.cbt_backup import G, Vm, checksum, incremental, writes_counted

    pool_disk, replica, log = fault_disks()
    xapi = cbt_xapi()
    call = xapi.call
    sr, vol, last = saved["sr"], saved["vol"], saved["last"]
    problems: list[str] = []
    call("SR.attach", configuration=saved["config"])
    listed = {v["key"]: v for v in call("SR.ls", sr=sr)}
    if (listed[last]["volume_type"], listed[last]["cbt_enabled"]) != (["CBT_Metadata", None],
                                                                      True):
        problems.append(f"S1 after the cut: {listed[last]}")
    disks = cbt_disks(xapi, sr)
    disks.device(sr, vol)  # the VM's disk again: its device made, its ZIL replayed
    s2 = call("Volume.snapshot", sr=sr, key=vol)["key"]
    source = disks.device(sr, s2)
    blocks = incremental(call, sr, last, s2, source, replica, CBT_SIZE)
    got, want = checksum(replica, CBT_SIZE), checksum(source, CBT_SIZE)
    if got != want:
        problems.append(f"replica {got[:16]} != S2's {want[:16]}")
    counted = writes_counted(log)
    writes = list(islice(Vm(CBT_SIZE, CBT_SEED).cut_writes(), counted + 1))
    durable, maybe = writes[:counted], writes[counted]
    missing = sorted({offset // G for offset, _ in durable} - blocks)
    if missing:
        problems.append(f"durable writes in unmarked blocks {missing}")
    last_write = dict(durable)  # offset: the last durable data written there
    fd = os.open(source, os.O_RDONLY)
    try:
        for offset, data in last_write.items():
            found = os.pread(fd, 4096, offset)
            if found != data and not (offset == maybe[0] and found == maybe[1]):
                problems.append(f"a durable write at {offset} is not in S2")
        # The write the cut interrupted (not counted): in S2 or not, as the disk had it.
        landed = os.pread(fd, 4096, maybe[0]) == maybe[1]
    finally:
        os.close(fd)
    if landed and maybe[0] // G not in blocks:
        problems.append(f"the interrupted write reached S2 at {maybe[0]}, its block unmarked")
    if not counted:
        problems.append("the cut came before any write was durable")
    call("SR.detach", sr=sr)
    return {"writes_counted": counted, "blocks_written": len({o // G for o, _ in durable}),
            "interrupted_write_landed": landed, "blocks_marked": len(blocks),
            "replica": got, "snapshot": want,
            "problems": problems}


def main(argv: list[str] | None = None) -> int:
    from zfsaga.steps.zfs.real import RealZfs

    parser = argparse.ArgumentParser(prog="python -m tests.power_cut")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--start")
    parser.add_argument("--at", default="random:5")
    parser.add_argument("--cbt-start", action="store_true")
    parser.add_argument("--cbt-check", action="store_true")
    args = parser.parse_args(argv)
    if args.cbt_start or args.cbt_check:
        run("modprobe", "-a", "dm-mod")
        if args.cbt_check:
            result = cbt_check(json.loads(os.environ["ZFSAGA_CBT_BOOT1"]))
            (OUT / "result.json").write_text(json.dumps(result))
            print("backup round after the cut:", json.dumps(result), flush=True)
        if args.cbt_start:
            cbt_start()
        return 0
    zfs = RealZfs()
    run("modprobe", "-a", "dm-mod")
    if args.check:
        result = check(zfs, os.environ["ZFSAGA_CUT_SEGMENT"])
        (OUT / "result.json").write_text(json.dumps(result))
        print("power cut checked:", json.dumps(result), flush=True)
    if args.start:
        subprocess.run(["zpool", "destroy", POOL], capture_output=True)
        start(zfs, args.start, args.at)
    return 0


if __name__ == "__main__":
    sys.exit(main())
