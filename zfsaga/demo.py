"""`make demo`: an xe-like session against real ZFS, printing each call and its JSON result.

Until the SMAPIv3 plugin exists, each xe step is carried out by the ZFS-layer calls the plugin
will make for it; the printed call names say which SMAPIv3 verb they stand for. The revert runs
as the sample saga, through the engine, journaled on the pool as in production. Data written to
the VDI is read back after snapshot, clone and revert, so the demo fails loudly if ZFS does not
do what the session expects.

Runs where /dev/zfs exists: inside the guest (`python -m zfsaga.guest -- ... -m zfsaga.demo`) or
on a ZFS host, on the pool named by ZFSAGA_TEST_POOL.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid

from zfsaga.steps.zfs.real import RealZfs
from zfsaga.steps.zfs.interface import Zfs

MiB = 1024**2
SHOWN = ("type", "guid", "origin", "volsize", "org.zfsaga:name")


def show(verb: str, args: dict, result: object) -> None:
    print(f"\n>>> {verb} {json.dumps(args, sort_keys=True)}")
    print(json.dumps(result, indent=2, sort_keys=True))
    sys.stdout.flush()


def describe(zfs: Zfs, name: str) -> dict[str, str | None]:
    props = zfs.get_props(name, SHOWN)
    return {"name": name, **{k: p.value for k, p in props.items()}}


def write_pattern(path: str, label: str) -> str:
    """Fill the first MiB of a block device with a pattern derived from label; return its hash."""
    data = hashlib.sha256(label.encode()).digest() * (MiB // 32)
    fd = os.open(path, os.O_WRONLY | os.O_SYNC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return hashlib.sha256(data).hexdigest()


def read_hash(path: str) -> str:
    with open(path, "rb") as dev:
        return hashlib.sha256(dev.read(MiB)).hexdigest()


def expect(what: str, got: str, want: str) -> None:
    ok = got == want
    print(f"    check {what}: {'ok' if ok else 'MISMATCH'} ({got[:12]})")
    if not ok:
        raise SystemExit(f"demo: {what}: data does not match ({got} != {want})")


def revert_by_saga(zfs: RealZfs, sr: str, vdi: str, snapshot: str) -> dict:
    """Run the revert saga through the engine, with the SR's journal where production keeps it."""
    from zfsaga.sagas import revert
    from zfsaga.sagas.engine import Engine
    from zfsaga.state.journal import Journal
    from zfsaga.location import sr_state_dir

    state = sr_state_dir(zfs, sr, create=True)
    journal = Journal(state / "journal.db")
    try:
        outcome = revert.start(Engine(zfs, journal, state), sr, vdi, snapshot)
        row = journal.get(outcome.saga_id)
        done = [e.step for e in row.events if e.type == "step_done"]
        return {"saga": outcome.saga_id, "status": outcome.status, "steps": done,
                "journal": str(state / "journal.db")}
    finally:
        journal.close()


def main() -> int:
    pool = os.environ.get("ZFSAGA_TEST_POOL", "zfsagatest")
    zfs = RealZfs()
    print(f"zfs: {zfs.version()}")
    sr = f"{pool}/demo-sr-{uuid.uuid4().hex[:8]}"

    zfs.create_filesystem(sr, {"org.zfsaga:sr": "demo"})
    zfs.set_props(sr, {"snapdev": "visible"})  # snapshots get /dev/zvol nodes, for reading back
    show("SR.create", {"name": "demo", "uri": sr}, describe(zfs, sr))

    vdi = f"{sr}/vdi-1"
    zfs.create_zvol(vdi, 64 * MiB, sparse=True, props={"org.zfsaga:name": "disk-1"})
    show("Volume.create", {"sr": sr, "name": "disk-1", "size": 64 * MiB}, describe(zfs, vdi))

    v1 = write_pattern(zfs.device_path(vdi), "version 1")
    show("(guest writes)", {"volume": vdi, "bytes": MiB}, {"sha256": v1})

    zfs.snapshot([f"{vdi}@snap-1"], {"org.zfsaga:name": "before upgrade"})
    show("Volume.snapshot", {"sr": sr, "key": vdi}, describe(zfs, f"{vdi}@snap-1"))

    v2 = write_pattern(zfs.device_path(vdi), "version 2")
    show("(guest writes)", {"volume": vdi, "bytes": MiB}, {"sha256": v2})
    expect("snapshot still holds version 1", read_hash(zfs.device_path(f"{vdi}@snap-1")), v1)

    clone = f"{sr}/vdi-2"
    zfs.clone(f"{vdi}@snap-1", clone, {"org.zfsaga:name": "disk-1 clone"})
    show("Volume.clone", {"sr": sr, "key": f"{vdi}@snap-1"}, describe(zfs, clone))
    expect("clone reads version 1", read_hash(zfs.device_path(clone)), v1)

    # Revert to snap-1 without losing anything, as a saga: journaled on the pool (in its
    # zfsaga-state filesystem), every step probed, the old head retired at the pivot.
    outcome = revert_by_saga(zfs, sr, vdi, f"{vdi}@snap-1")
    show("VDI.revert (saga: hold, clone, aside, swap in, promote, retire, release)",
         {"sr": sr, "key": vdi, "snapshot": "snap-1"},
         {"saga": outcome["saga"], "status": outcome["status"], "steps": outcome["steps"],
          "journal": outcome["journal"], "volume": describe(zfs, vdi)})
    if outcome["status"] != "succeeded":
        raise SystemExit(f"demo: the revert saga ended {outcome['status']}")
    expect("reverted VDI reads version 1", read_hash(zfs.device_path(vdi)), v1)

    tree = zfs.list_tree(sr, ("type", "origin"))
    show("SR.ls", {"sr": sr},
         [{"name": n, "type": p["type"].value, "origin": p["origin"].value} for n, p in tree.items()])

    zfs.destroy(clone)
    zfs.destroy_snapshots([f"{vdi}@snap-1"])
    zfs.destroy(vdi)
    show("Volume.destroy", {"sr": sr, "keys": [clone, f"{vdi}@snap-1", vdi]},
         {"remaining": sorted(zfs.list_tree(sr, ("type",)))})
    zfs.destroy(sr)
    show("SR.destroy", {"sr": sr}, {"exists": zfs.exists(sr)})
    print("\ndemo: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
