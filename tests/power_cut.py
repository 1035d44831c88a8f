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


def main(argv: list[str] | None = None) -> int:
    from zfsaga.steps.zfs.real import RealZfs

    parser = argparse.ArgumentParser(prog="python -m tests.power_cut")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--start")
    parser.add_argument("--at", default="random:5")
    args = parser.parse_args(argv)
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
