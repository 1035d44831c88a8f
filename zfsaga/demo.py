"""`make demo`: an xe-like session on real ZFS through the installed entry points, exactly as
xapi-storage-script runs them: `make install` into a scratch DESTDIR, then one process per
verb, JSON on stdin, the result JSON on stdout. Each step prints the xe command it stands for,
the verb and its result. A guest's writes go through the datapath's own device and are read
back by checksum after snapshot, clone, revert to an older snapshot and copy, so the demo fails
loudly if anything is not what the session expects. A round of changed block tracking (CBT)
follows: the blocks changed between two snapshots checked against the ones the guest wrote,
then the first snapshot kept as metadata only (vdi-data-destroy).

Runs where /dev/zfs exists: inside the guest (`make demo`) or on a ZFS host, on the pool named
by ZFSAGA_TEST_POOL.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

MiB = 1024**2


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


class Host:
    """The installed plugin, called the way xapi-storage-script calls it."""

    def __init__(self, destdir: Path, state: Path) -> None:
        base = destdir / "usr/libexec/xapi-storage-script"
        self.volume = base / "volume/org.xen.xapi.storage.zfsaga"
        self.datapath = base / "datapath/zfsaga"
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ZFSAGA_SYSLOG": "0",
                    "ZFSAGA_STATE_DIR": str(state), "ZFSAGA_RUN_DIR": str(state / "run"),
                    "ZFSAGA_HOST_STATE_DIR": str(state / "host")}

    def call(self, xe: str, verb: str, **args: object) -> object:
        where = self.datapath if verb.startswith("Datapath.") else self.volume
        out = subprocess.run([str(where / verb), "--json"], capture_output=True, text=True,
                             input=json.dumps({"dbg": "demo", **args}), env=self.env)
        result = json.loads(out.stdout) if out.stdout.strip() else None
        print(f"\n$ {xe}\n>>> {verb} {json.dumps(args, sort_keys=True)}")
        print(json.dumps(result, indent=2, sort_keys=True))
        sys.stdout.flush()
        if out.returncode != 0:
            raise SystemExit(f"demo: {verb} failed: {out.stdout}{out.stderr}")
        return result

    def device(self, sr: str, key: str) -> str:
        """Volume.stat then Datapath.attach, as xapi does before a VM (or dom0) uses a disk."""
        uri = self.call("(attach)", "Volume.stat", sr=sr, key=key)["uri"][0]
        got = self.call("(attach)", "Datapath.attach", uri=uri, domain="0")
        return dict(got["implementations"])["BlockDevice"]["path"]


def main() -> int:
    pool = os.environ.get("ZFSAGA_TEST_POOL", "zfsagatest")
    root = Path(__file__).resolve().parent.parent
    dataset = f"{pool}/demo-{uuid.uuid4().hex[:8]}"
    subprocess.run(["zfs", "create", dataset], check=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, str(root / "tools/install.py"), "install",
                            "--destdir", tmp], check=True, capture_output=True)
            session(Host(Path(tmp), Path(tmp) / "state"), dataset)
            on_devices(Host(Path(tmp), Path(tmp) / "state"), Path(tmp))
    finally:
        subprocess.run(["zfs", "destroy", "-r", dataset], capture_output=True)
    print("\ndemo: ok")
    return 0


def session(host: Host, dataset: str) -> None:
    call = host.call
    config = call("xe sr-create type=zfsaga device-config:dataset=" + dataset, "SR.create",
                  uuid=str(uuid.uuid4()), name="demo SR", description="made by make demo",
                  configuration={"dataset": dataset, "compression": "lz4"})
    sr = call("(xapi plugs the PBD)", "SR.attach", configuration=config)
    call("(sr-scan)", "SR.stat", sr=sr)
    vdi = call("xe vdi-create sr-uuid=$SR name-label=disk-1 virtual-size=64MiB",
               "Volume.create", sr=sr, name="disk-1", description="", size=64 * MiB,
               sharable=False)["key"]
    call("(vdi-create, then)", "Volume.set", sr=sr, key=vdi, k="vdi-type", v="user")
    v1 = write_pattern(host.device(sr, vdi), "version 1")
    print(f"    guest wrote version 1 (sha256 {v1[:12]})")
    s1 = call("xe vdi-snapshot uuid=$VDI", "Volume.snapshot", sr=sr, key=vdi)["key"]
    v2 = write_pattern(host.device(sr, vdi), "version 2")
    print(f"    guest wrote version 2 (sha256 {v2[:12]})")
    s2 = call("xe vdi-snapshot uuid=$VDI", "Volume.snapshot", sr=sr, key=vdi)["key"]
    write_pattern(host.device(sr, vdi), "version 3")
    clone = call("xe vm-clone (the live disk)", "Volume.clone", sr=sr, key=vdi)["key"]
    expect("the clone of the live disk reads version 3", read_hash(host.device(sr, clone)),
           read_hash(host.device(sr, vdi)))
    call("xe snapshot-revert (to the OLDER snapshot)", "Volume.revert", sr=sr, snapshot=s1,
         key=vdi)
    expect("the VDI, same key, reads version 1", read_hash(host.device(sr, vdi)), v1)
    expect("the newer snapshot still reads version 2", read_hash(host.device(sr, s2)), v2)
    call("xe snapshot-revert (to the newer one, left on the retired head)", "Volume.revert",
         sr=sr, snapshot=s2, key=vdi)
    expect("the VDI reads version 2", read_hash(host.device(sr, vdi)), v2)
    copy = call("xe vdi-copy uuid=$SNAP1 (a new VDI ...)", "Volume.create", sr=sr,
                name="copy of snap 1", description="", size=64 * MiB,
                sharable=False)["key"]
    with open(host.device(sr, s1), "rb") as src, open(host.device(sr, copy), "r+b") as dst:
        dst.write(src.read(MiB))  # (... the snapshot attached read-only, copied)
    expect("the copy reads version 1", read_hash(host.device(sr, copy)), v1)
    call("xe vdi-resize uuid=$VDI disk-size=128MiB", "Volume.resize", sr=sr, key=vdi,
         new_size=128 * MiB)
    call("xe sr-scan uuid=$SR", "SR.ls", sr=sr)
    cbt_round(host, sr)
    for key, xe in [(vdi, "xe vdi-destroy uuid=$VDI (its snapshots stay)"),
                    (s1, "xe vdi-destroy uuid=$SNAP1"), (clone, "xe vdi-destroy uuid=$CLONE"),
                    (s2, "xe vdi-destroy uuid=$SNAP2"), (copy, "xe vdi-destroy uuid=$COPY")]:
        call(xe, "Volume.destroy", sr=sr, key=key)
    left = call("xe sr-scan uuid=$SR", "SR.ls", sr=sr)
    if left:
        raise SystemExit(f"demo: VDIs left after destroying them all: {left}")
    call("xe sr-destroy uuid=$SR", "SR.destroy", sr=sr)


def write_at(path: str, offset: int, data: bytes) -> None:
    """A guest's write of `data` at `offset` of a block device, on disk when it returns."""
    fd = os.open(path, os.O_WRONLY | os.O_SYNC)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def marked_blocks(answer: dict) -> list[int]:
    """The blocks a changed-blocks bitmap marks, read as xapi's consumers read it."""
    import base64

    bitmap = base64.b64decode(answer["bitmap"])
    return [i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (0x80 >> i % 8)]


def cbt_round(host: Host, sr: str) -> None:
    """One round of an incremental backup with changed block tracking: the blocks changed
    between two snapshots, the first then kept as metadata only (its data freed, a ZFS bookmark
    of it kept), and the changes counted from it still."""
    call, size, grain = host.call, 8 * MiB, 64 * 1024
    vdi = call("xe vdi-create sr-uuid=$SR name-label=disk-cbt virtual-size=8MiB",
               "Volume.create", sr=sr, name="disk-cbt", description="", size=size,
               sharable=False)["key"]
    write_at(host.device(sr, vdi), 0, b"full backup " * (size // 12) + bytes(size % 12))
    print("    guest wrote the whole disk (the full backup copies it all)")
    call("xe vdi-enable-cbt uuid=$VDI", "Volume.enable_cbt", sr=sr, key=vdi)
    base = call("xe vdi-snapshot uuid=$VDI (the full backup's snapshot)", "Volume.snapshot",
                sr=sr, key=vdi)["key"]
    dev = host.device(sr, vdi)
    write_at(dev, 0, b"a" * 4096)                     # block 0
    write_at(dev, 17 * grain - 2048, b"b" * 4096)      # across blocks 16 and 17
    write_at(dev, size - 4096, b"c" * 4096)            # the last block, 127
    want = [0, 16, 17, size // grain - 1]
    print(f"    guest wrote 4 KiB into blocks {want} of {size // grain} (64 KiB each)")
    later = call("xe vdi-snapshot uuid=$VDI (the next backup's snapshot)", "Volume.snapshot",
                 sr=sr, key=vdi)["key"]
    changed = call("xe vdi-list-changed-blocks vdi-from-uuid=$SNAP_A vdi-to-uuid=$SNAP_B",
                   "Volume.list_changed_blocks", sr=sr, key=base, key2=later, offset=0,
                   length=-1)
    got = marked_blocks(changed)
    print(f"    marked blocks: {got}")
    expect("the marked blocks are the blocks written", str(got), str(want))
    call("xe vdi-data-destroy uuid=$SNAP_A (its data freed, a bookmark kept)",
         "Volume.data_destroy", sr=sr, key=base)
    call("(xapi, right after)", "Volume.set", sr=sr, key=base, k="vdi-type", v="cbt_metadata")
    listed = {v["key"]: v for v in call("xe vdi-list sr-uuid=$SR", "SR.ls", sr=sr)}
    expect("$SNAP_A is listed as metadata only", str(listed[base]["volume_type"]),
           str(["CBT_Metadata", None]))
    again = call("xe vdi-list-changed-blocks vdi-from-uuid=$SNAP_A (metadata only) "
                 "vdi-to-uuid=$SNAP_B", "Volume.list_changed_blocks", sr=sr, key=base,
                 key2=later, offset=0, length=-1)
    expect("the changes from the metadata-only snapshot are the same",
           str(marked_blocks(again)), str(want))
    for key, xe in [(later, "xe vdi-destroy uuid=$SNAP_B"),
                    (base, "xe vdi-destroy uuid=$SNAP_A (its bookmark goes)"),
                    (vdi, "xe vdi-destroy uuid=$VDI")]:
        call(xe, "Volume.destroy", sr=sr, key=key)


def on_devices(host: Host, tmp: Path) -> None:
    """An SR on a pool zfsaga makes of two disks (files here: zpool takes an absolute file
    path as a device): unplugged (exported), plugged again (imported), destroyed."""
    call = host.call
    disks = []
    for name in ("disk-a", "disk-b"):
        with open(tmp / name, "wb") as f:
            f.truncate(256 * MiB)
        disks.append(str(tmp / name))
    pool = f"zfsagademo{uuid.uuid4().hex[:6]}"
    config = call(f"xe sr-create type=zfsaga device-config:devices={','.join(disks)} "
                  f"device-config:layout=mirror device-config:pool={pool}", "SR.create",
                  uuid=str(uuid.uuid4()), name="mirror SR", description="a pool of its own",
                  configuration={"devices": ",".join(disks), "layout": "mirror",
                                 "pool": pool})
    try:
        sr = call("(xapi plugs the PBD)", "SR.attach", configuration=config)
        vdi = call("xe vdi-create sr-uuid=$SR2 name-label=disk virtual-size=32MiB",
                   "Volume.create", sr=sr, name="disk", description="", size=32 * MiB,
                   sharable=False)["key"]
        written = write_pattern(host.device(sr, vdi), "on the mirror")
        call("xe pbd-unplug uuid=$PBD (the pool is exported)", "SR.detach", sr=sr)
        call("xe pbd-plug uuid=$PBD (the pool is imported again)", "SR.attach",
             configuration=config)
        expect("the VDI reads what was written before the export",
               read_hash(host.device(sr, vdi)), written)
        call("xe vdi-destroy uuid=$VDI", "Volume.destroy", sr=sr, key=vdi)
        call("xe sr-destroy uuid=$SR2 (the pool zfsaga made goes with it)", "SR.destroy",
             sr=sr)
    finally:
        subprocess.run(["zpool", "destroy", pool], capture_output=True)


if __name__ == "__main__":
    raise SystemExit(main())
