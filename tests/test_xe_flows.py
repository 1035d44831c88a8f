"""xe flows replayed verb by verb, as xapi and xenopsd drive them through the installed entry
points: a VM started and stopped with a reset-on-boot disk (the clone-on-boot flow: zfsaga
does not declare NONPERSISTENT), and vm-copy from a snapshot (the snapshot attached
read-only, copied into a new volume). On the model (the calls and what
SR.ls shows) and, marked realzfs, on real ZFS with the data checked by checksum."""
from __future__ import annotations

import os

import pytest

from tests.test_plugin_verbs import Host, host  # noqa: F401 (fixture)
from tests.xapi_daemon import Disks
from zfsaga.steps.zfs.shared_model import SharedModelZfs

MiB = 1 << 20


def _shown(host: Host, sr: str) -> list[str]:
    """What xapi keeps after an sr-scan: SR.ls, less volumes another's clone-on-boot names."""
    vols = host.xapi.call("SR.ls", sr=sr)
    temps = {v["keys"]["clone-on-boot"] for v in vols if "clone-on-boot" in v["keys"]}
    return sorted(v["key"] for v in vols if v["key"] not in temps)


def _one_disk(host: Host, tmp_path, label: str):
    """An SR with one 4 MiB VDI the guest wrote `label` into (real ZFS only: the model has
    no devices): (real, sr, call, disks, key, the data's hash or None)."""
    real = not isinstance(host.zfs, SharedModelZfs)
    sr, call = host.sr(), host.xapi.call
    disks = Disks(host, tmp_path / "run")
    key = call("Volume.create", sr=sr, name=label, description="", size=4 * MiB,
               sharable=False)["key"]
    return real, sr, call, disks, key, disks.write(sr, key, label) if real else None


def test_a_reset_on_boot_disk_starts_fresh_every_boot(host: Host, tmp_path) -> None:
    if not isinstance(host.zfs, SharedModelZfs):
        pytest.skip("on the model: its real parts (clone of a live disk, data through the "
                    "datapath) are proven by vm-copy below and test_plugin_revert on real ZFS")
    real, sr, call, disks, key, golden = _one_disk(host, tmp_path, "the golden image")
    for boot in range(1 if real else 3):  # a process per call costs seconds in the guest
        # epoch_begin: destroy any old temporary, clone, remember it on the VDI.
        temp = call("Volume.clone", sr=sr, key=key)["key"]
        call("Volume.set", sr=sr, key=key, k="clone-on-boot", v=temp)
        assert _shown(host, sr) == [key]  # the temporary is not a VDI of its own
        uri = call("Volume.stat", sr=sr, key=temp)["uri"][0]
        if real:  # the model has no devices to attach
            disks.dp.call("Datapath.attach", uri=uri, domain="3")
        disks.dp.call("Datapath.activate", uri=uri, domain="3")
        if real:
            assert disks.read(sr, temp) == golden  # every boot starts from the image
            disks.write(sr, temp, f"what boot {boot} wrote")
        # VM stop: deactivate, detach, epoch_end.
        disks.dp.call("Datapath.deactivate", uri=uri, domain="3")
        disks.dp.call("Datapath.detach", uri=uri, domain="3")
        call("Volume.destroy", sr=sr, key=temp)
        call("Volume.unset", sr=sr, key=key, k="clone-on-boot")
        assert _shown(host, sr) == [key]
        assert [x["key"] for x in call("SR.ls", sr=sr)] == [key]
        if real:
            assert disks.read(sr, key) == golden  # nothing a boot wrote reached the disk
    call("Volume.destroy", sr=sr, key=key)
    assert [n for n in host.zfs.list_tree(sr, ["type"]) if n != sr] == []


def test_vm_copy_from_a_snapshot_reads_it_read_only(host: Host, tmp_path) -> None:
    if not isinstance(host.zfs, SharedModelZfs) and not os.environ.get("ZFSAGA_REAL_FLOWS"):
        pytest.skip("on real ZFS with ZFSAGA_REAL_FLOWS=1 (CI's hour): a snapshot's read-only "
                    "device is proven in test_datapath and read in test_plugin_revert")
    real, sr, call, disks, key, taken = _one_disk(host, tmp_path, "at snapshot time")
    v = {"key": key}
    snap = call("Volume.snapshot", sr=sr, key=v["key"])
    if real:
        disks.write(sr, v["key"], "written after the snapshot")
    # vdi-copy: a new VDI, the source attached read-only in dom0, the copy RW, sparse_dd.
    copy = call("Volume.create", sr=sr, name="copy", description="",
                size=snap["virtual_size"], sharable=False)
    src_uri = call("Volume.stat", sr=sr, key=snap["key"])["uri"][0]
    dst_uri = call("Volume.stat", sr=sr, key=copy["key"])["uri"][0]
    disks.dp.call("Datapath.activate_readonly", uri=src_uri, domain="u0-copy")
    disks.dp.call("Datapath.activate", uri=dst_uri, domain="u0-copy")
    if real:  # the model has no devices to attach
        got = dict(disks.dp.call("Datapath.attach", uri=src_uri, domain="u0-copy")
                   ["implementations"])
        assert got["XenDisk"]["extra"]["discard-enable"] == "0"  # nothing to give back
        assert got["XenDisk"]["extra"]["sector-size"] == "512"
        dst = dict(disks.dp.call("Datapath.attach", uri=dst_uri, domain="u0-copy")
                   ["implementations"])
        assert dst["XenDisk"]["extra"]["discard-enable"] == "1"  # thin: freed blocks go back
        assert dst["XenDisk"]["extra"]["discard-granularity"] == "8192"
        src = got["BlockDevice"]["path"]
        with open(src, "rb") as source, open(dst["BlockDevice"]["path"], "r+b") as target:
            target.write(source.read(MiB))
        with pytest.raises(OSError):  # the snapshot's device is read-only
            with open(src, "r+b") as source:
                source.write(b"x")
        assert disks.read(sr, copy["key"]) == taken
        assert disks.read(sr, snap["key"]) == taken
    for uri in (src_uri, dst_uri):
        disks.dp.call("Datapath.deactivate", uri=uri, domain="u0-copy")
        disks.dp.call("Datapath.detach", uri=uri, domain="u0-copy")
    for key in (v["key"], snap["key"], copy["key"]):
        call("Volume.destroy", sr=sr, key=key)
    assert [n for n in host.zfs.list_tree(sr, ["type"]) if n != sr] == []
