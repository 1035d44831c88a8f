"""The datapath entry points (datapath/zfsaga/), as xapi-storage-script runs them after
Volume.stat: Plugin.query registers the scheme; attach hands over the zvol's own device,
proven by the BLKZNAME ioctl (real ZFS in the guest: devices exist there), and a
snapshot's own read-only device; activate is
exclusive per host, activate_readonly shared, every verb idempotent."""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from tests.conftest import POOL, destroy_tree, real_zfs
from tests.xapi_daemon import Daemon, ScriptError
from zfsaga.plugin import idl
from zfsaga.plugin.datapath import zvol_name



def datapath(destdir: Path, env: dict[str, str]) -> Daemon:
    daemon = Daemon(destdir, "zfsaga", env)
    daemon.dir = destdir / "usr/libexec/xapi-storage-script/datapath/zfsaga"
    return daemon


def test_the_datapath_registers_its_scheme(destdir: Path, tmp_path: Path) -> None:
    dp = datapath(destdir, {"ZFSAGA_SYSLOG": "0", "ZFSAGA_RUN_DIR": str(tmp_path)})
    query = dp.call("Plugin.query")
    assert query["plugin"] == "zfsaga" and query["required_api_version"] == "5.0"
    assert sorted(os.listdir(dp.dir)) == sorted([
        "zfsaga-entry", "Plugin.Query", "Datapath.attach", "Datapath.activate",
        "Datapath.activate_readonly", "Datapath.deactivate", "Datapath.detach"])


def test_activate_is_exclusive_per_host_and_every_verb_idempotent(destdir: Path,
                                                                  tmp_path: Path) -> None:
    dp = datapath(destdir, {"ZFSAGA_SYSLOG": "0", "ZFSAGA_RUN_DIR": str(tmp_path)})
    uri = f"zfsaga:///dev/zvol/{POOL}/sr/0f0e-key"
    for _ in range(2):
        assert dp.call("Datapath.activate", uri=uri, domain="7") is None
    with pytest.raises(ScriptError) as err:
        dp.call("Datapath.activate", uri=uri, domain="9")
    assert "domain 7" in err.value.params[1]
    with pytest.raises(ScriptError):
        dp.call("Datapath.activate_readonly", uri=uri, domain="9")
    for _ in range(2):
        dp.call("Datapath.deactivate", uri=uri, domain="7")
    dp.call("Datapath.activate_readonly", uri=uri, domain="9")
    dp.call("Datapath.activate_readonly", uri=uri, domain="u0-copy")  # shared
    with pytest.raises(ScriptError):
        dp.call("Datapath.activate", uri=uri, domain="7")  # not beside readers
    dp.call("Datapath.deactivate", uri=uri, domain="9")
    dp.call("Datapath.deactivate", uri=uri, domain="u0-copy")
    dp.call("Datapath.activate", uri=uri, domain="7")


@pytest.mark.parametrize("uri", ["file:///etc/passwd", "zfsaga:///etc/passwd",
                                 "zfsaga:///dev/zvol/../../etc/x", "zfsaga://host/dev/zvol/a/b",
                                 "zfsaga:///dev/zvol/a;rm -rf /"])
def test_a_uri_that_is_not_a_zvol_of_ours_is_refused(destdir: Path, tmp_path: Path,
                                                     uri: str) -> None:
    dp = datapath(destdir, {"ZFSAGA_SYSLOG": "0", "ZFSAGA_RUN_DIR": str(tmp_path)})
    for verb in ("Datapath.attach", "Datapath.activate", "Datapath.detach"):
        with pytest.raises(ScriptError) as err:
            dp.call(verb, uri=uri, domain="1")
        assert err.value.name == "Invalid_argument"
    assert not (tmp_path / "active").exists() or not os.listdir(tmp_path / "active")


def test_a_device_that_never_appears_is_a_bounded_wait(destdir: Path, tmp_path: Path) -> None:
    dp = datapath(destdir, {"ZFSAGA_SYSLOG": "0", "ZFSAGA_RUN_DIR": str(tmp_path),
                            "ZFSAGA_DEVICE_WAIT": "1"})
    with pytest.raises(ScriptError) as err:
        dp.call("Datapath.attach", uri=f"zfsaga:///dev/zvol/{POOL}/no/such", domain="1")
    assert err.value.name == "Busy" and "waited 1s" in err.value.params[1]


@pytest.mark.realzfs
def test_attach_hands_over_the_volumes_own_device(destdir: Path, tmp_path: Path) -> None:
    zfs = real_zfs()
    root = f"{POOL}/dp{uuid.uuid4().hex[:8]}"
    zfs.create_filesystem(root)
    zfs.create_filesystem(f"{root}/sr")
    env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(tmp_path / "state"),
           "ZFSAGA_RUN_DIR": str(tmp_path / "run")}
    try:
        xapi, dp = Daemon(destdir, "zfsaga", env), datapath(destdir, env)
        config = xapi.call("SR.create", uuid=str(uuid.uuid4()), name="s", description="",
                           configuration={"dataset": f"{root}/sr"})
        sr = xapi.call("SR.attach", configuration=config)
        vols = [xapi.call("Volume.create", sr=sr, name=n, description="", size=2 << 20,
                          sharable=False) for n in ("a", "b")]
        for vol in vols:
            uri = xapi.call("Volume.stat", sr=sr, key=vol["key"])["uri"][0]
            backend = dp.call("Datapath.attach", uri=uri, domain="3")
            idl.check(backend, idl.VERBS["Datapath.attach"][1], "backend")
            (tag1, disk), (tag2, block) = backend["implementations"]
            assert (tag1, tag2) == ("XenDisk", "BlockDevice")
            assert disk["params"] == block["path"] and block["path"].startswith("/dev/zd")
            assert zvol_name(block["path"]) == f"{sr}/{vol['key']}"  # this volume's, proven
            data = hashlib.sha256(vol["key"].encode()).digest() * 1024
            with open(block["path"], "r+b") as dev:
                dev.write(data)
                dev.flush()
                os.fsync(dev.fileno())
            with open(block["path"], "rb") as dev:
                assert dev.read(len(data)) == data
            dp.call("Datapath.activate", uri=uri, domain="3")
            dp.call("Datapath.deactivate", uri=uri, domain="3")
            assert dp.call("Datapath.detach", uri=uri, domain="3") is None
        snap = xapi.call("Volume.snapshot", sr=sr, key=vols[0]["key"])
        (_, disk), (_, block) = dp.call("Datapath.attach", uri=snap["uri"][0],
                                        domain="3")["implementations"]
        assert zvol_name(block["path"]) == f"{sr}/{snap['key']}"  # the snapshot's own
        with open(block["path"], "rb") as dev:  # it reads as the volume did when taken
            assert dev.read(len(data)) == hashlib.sha256(vols[0]["key"].encode()).digest() \
                * 1024
        with pytest.raises(OSError):
            open(block["path"], "r+b").close()  # and is read-only
    finally:
        destroy_tree(root)
