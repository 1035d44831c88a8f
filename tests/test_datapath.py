"""The datapath entry points (datapath/zfsaga/), as xapi-storage-script runs them after
Volume.stat: Plugin.query registers the scheme; attach hands over the zvol's own device,
proven by the BLKZNAME ioctl (real ZFS in the guest: devices exist there), and a
snapshot's own read-only device; activate is
exclusive per host, activate_readonly shared, every verb idempotent."""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import pytest

from tests.conftest import POOL, destroy_tree, real_zfs
from tests.xapi_daemon import Daemon, ScriptError
from zfsaga.plugin import idl
from zfsaga.plugin.datapath import zvol_name
from zfsaga.steps.zfs.shared_model import SharedModelZfs



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


class World:
    """An SR on the file-shared model holding volumes, and the datapath daemon over it."""

    def __init__(self, destdir: Path, tmp: Path, **env: str) -> None:
        path = tmp / "pool.model"
        self.run_dir = tmp / "run"
        env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(tmp / "state"),
               "ZFSAGA_ZFS": f"model:{path}", "ZFSAGA_MODEL_POOLS": POOL,
               "ZFSAGA_RUN_DIR": str(self.run_dir), **env}
        self.zfs = SharedModelZfs(path, pools=(POOL,))
        self.zfs.create_filesystem(f"{POOL}/p")
        self.zfs.create_filesystem(f"{POOL}/p/sr")
        self.xapi = Daemon(destdir, "zfsaga", env)
        self.dp = datapath(destdir, env)
        config = self.xapi.call("SR.create", uuid=str(uuid.uuid4()), name="s", description="",
                                configuration={"dataset": f"{POOL}/p/sr"})
        self.sr = self.xapi.call("SR.attach", configuration=config)

    def volume(self) -> dict:
        return self.xapi.call("Volume.create", sr=self.sr, name="v", description="",
                              size=1 << 20, sharable=False)

    def records(self) -> dict[str, str]:
        active = self.run_dir / "active"
        return {p.name: p.read_text() for p in active.iterdir()} if active.exists() else {}


def test_activate_is_exclusive_per_host_and_every_verb_idempotent(destdir: Path,
                                                                  tmp_path: Path) -> None:
    world = World(destdir, tmp_path)
    dp, uri = world.dp, world.volume()["uri"][0]
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


DATAPATH_VERBS = ("Datapath.attach", "Datapath.activate", "Datapath.activate_readonly",
                  "Datapath.deactivate", "Datapath.detach")
TEARDOWN = ("Datapath.deactivate", "Datapath.detach")


def test_every_verb_checks_its_target_first(destdir: Path, tmp_path: Path) -> None:
    """Each verb on what is not a VDI of a zfsaga SR: Volume_does_not_exist at once (attach
    without the device wait), Invalid_argument for a URI that names no zvol; no activation
    recorded. The same verbs on the live volume and its snapshot succeed (attach aside: the
    model has no devices)."""
    import time

    world = World(destdir, tmp_path)
    sr, zfs = world.sr, world.zfs
    live, gone, kept = world.volume(), world.volume(), world.volume()
    snap = world.xapi.call("Volume.snapshot", sr=sr, key=kept["key"])
    world.xapi.call("Volume.destroy", sr=sr, key=gone["key"])
    world.xapi.call("Volume.destroy", sr=sr, key=kept["key"])  # retired: its snapshot lives
    assert zfs.exists(f"{sr}/{kept['key']}") and not zfs.exists(f"{sr}/{gone['key']}")
    zfs.create_filesystem(f"{POOL}/other")
    zfs.create_zvol(f"{POOL}/other/z", 1 << 20, sparse=True)  # a foreign zvol, no SR
    zfs.create_zvol(f"{sr}/admins", 1 << 20, sparse=True)  # inside the SR, not zfsaga's
    zfs.create_zvol(f"{POOL}/p/z", 1 << 20, sparse=True)  # beside the SR
    missing = {"destroyed volume": gone["uri"][0], "retired head": kept["uri"][0],
               "SR's own filesystem": f"zfsaga:///dev/zvol/{sr}",
               "the SR's parent": f"zfsaga:///dev/zvol/{POOL}/p",
               "a pool": f"zfsaga:///dev/zvol/{POOL}",
               "foreign zvol": f"zfsaga:///dev/zvol/{POOL}/other/z",
               "unkeyed zvol in the SR": f"zfsaga:///dev/zvol/{sr}/admins",
               "zvol beside the SR": f"zfsaga:///dev/zvol/{POOL}/p/z",
               "a snapshot that is not there": f"{live['uri'][0]}@nope"}
    malformed = {"uri with ../": f"zfsaga:///dev/zvol/{sr}/../{live['key']}",
                 "unknown scheme": f"file:///dev/zvol/{sr}/{live['key']}",
                 "empty domain": live["uri"][0]}
    malformed["malformed authority"] = "zfsaga://[::1"
    cases = 0
    for verb in DATAPATH_VERBS:
        for why, uri in [*missing.items(), *malformed.items()]:
            started = time.monotonic()
            domain = "" if why == "empty domain" else "7"
            if verb in TEARDOWN and why in missing:
                # xapi unplugs what is gone by now (after a destroy, a detach, a crash): a
                # teardown of a well-formed URI succeeds and records nothing.
                assert world.dp.call(verb, uri=uri, domain=domain) is None
            else:
                with pytest.raises(ScriptError) as err:
                    world.dp.call(verb, uri=uri, domain=domain)
                want = "Volume_does_not_exist" if why in missing else "Invalid_argument"
                assert err.value.name == want, (verb, why, err.value.params)
            assert time.monotonic() - started < 10, (verb, why)  # at once, no device wait
            assert world.records() == {}, (verb, why)
            cases += 1
    assert cases == len(DATAPATH_VERBS) * 13
    for uri in (live["uri"][0], snap["uri"][0]):
        world.dp.call("Datapath.activate_readonly", uri=uri, domain="7")
        world.dp.call("Datapath.deactivate", uri=uri, domain="7")
        world.dp.call("Datapath.detach", uri=uri, domain="7")
    world.dp.call("Datapath.activate", uri=live["uri"][0], domain="7")


def test_a_volume_destroyed_while_active_is_still_torn_down(destdir: Path,
                                                             tmp_path: Path) -> None:
    """xapi's unplug after the volume went (a forced destroy, an admin's zfs destroy): the
    activation record is dropped, so nothing stale names the volume active on this host."""
    world = World(destdir, tmp_path)
    vol = world.volume()
    world.dp.call("Datapath.activate", uri=vol["uri"][0], domain="7")
    assert len(world.records()) == 1
    world.zfs.destroy(f"{world.sr}/{vol['key']}")
    world.dp.call("Datapath.deactivate", uri=vol["uri"][0], domain="7")
    world.dp.call("Datapath.detach", uri=vol["uri"][0], domain="7")
    assert [json.loads(r) for r in world.records().values()] == [{"rw": None, "ro": []}]


def test_an_activation_for_one_domain_names_it_to_the_next(destdir: Path,
                                                           tmp_path: Path) -> None:
    world = World(destdir, tmp_path)
    uri = world.volume()["uri"][0]
    world.dp.call("Datapath.activate_readonly", uri=uri, domain="0")
    with pytest.raises(ScriptError) as err:
        world.dp.call("Datapath.activate", uri=uri, domain="5")
    assert err.value.name == "Activated_on_this_host" and "domain 0" in err.value.params[1]
    world.dp.call("Datapath.deactivate", uri=uri, domain="0")
    world.dp.call("Datapath.activate", uri=uri, domain="0")
    with pytest.raises(ScriptError) as err:
        world.dp.call("Datapath.activate_readonly", uri=uri, domain="5")
    assert err.value.name == "Activated_on_this_host" and "domain 0" in err.value.params[1]


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
    world = World(destdir, tmp_path, ZFSAGA_DEVICE_WAIT="1")  # the model makes no devices
    with pytest.raises(ScriptError) as err:
        world.dp.call("Datapath.attach", uri=world.volume()["uri"][0], domain="1")
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
