"""An SR on devices: SR.create makes a pool of the devices given, detach exports it, attach
imports it again (as after a reboot), destroy destroys it, each a saga on the host's journal.
Through the installed entry points, on the file-shared model and, marked realzfs, on real ZFS
in the guest (file vdevs: zpool treats an absolute file path as a device). A pool that holds
anything zfsaga did not make is never exported nor destroyed; bad configurations and busy
devices change nothing."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import POOL, real_more, real_zfs
from tests.xapi_daemon import Daemon, ScriptError
from zfsaga.state.journal import Journal
from zfsaga.steps.zfs.shared_model import SharedModelZfs

MiB = 1 << 20


class Devices:
    """Scratch devices, a daemon whose host journal is a scratch directory, and the backend."""

    def __init__(self, zfs, tmp_path, daemon: Daemon, real: bool) -> None:
        self.zfs, self.tmp, self.xapi, self.real = zfs, tmp_path, daemon, real
        self.pool = f"zfsagadev{uuid.uuid4().hex[:6]}"
        self.made: list[str] = []
        self.uuids: list[str] = []

    def device(self, name: str) -> str:
        path = self.tmp / name
        with open(path, "wb") as f:
            f.truncate(128 * MiB)
        return str(path)

    def create(self, **config) -> dict:
        config.setdefault("pool", self.pool)
        self.made.append(config["pool"])
        self.uuids.append(str(uuid.uuid4()))
        return self.xapi.call("SR.create", uuid=self.uuids[-1], name="on devices",
                              description="a pool of its own", configuration=config)

    def host_sagas(self) -> list[tuple[str, str]]:
        journal = Journal(self.tmp / "host" / "journal.db")
        try:
            return [(row.kind, row.status) for row in reversed(journal.list())]  # oldest first
        finally:
            journal.close()

    def pools(self) -> dict:
        """Every imported pool and its datasets, guids and user properties."""
        if not self.real:
            return {n: (p["guid"].value, sorted(self.zfs.user_props(n).items()))
                    for pool in [POOL, *self.made] if self.zfs.pool_guid(pool)
                    for n, p in self.zfs.list_tree(pool, ["guid"]).items()}
        out = subprocess.run(["zfs", "get", "-Hp", "-o", "name,property,value", "all"],
                             capture_output=True, text=True, check=True).stdout
        pools = subprocess.run(["zpool", "list", "-Hp", "-o", "name,guid"],
                               capture_output=True, text=True, check=True).stdout
        return sorted([*pools.splitlines(), *(line for line in out.splitlines()
                                              if line.split("\t")[1] == "guid"
                                              or ":" in line.split("\t")[1])])


@pytest.fixture(params=["model", pytest.param("real", marks=pytest.mark.realzfs)])
def devices(request, destdir, tmp_path) -> Devices:
    env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(tmp_path / "state"),
           "ZFSAGA_HOST_STATE_DIR": str(tmp_path / "host")}
    if request.param == "model":
        path = tmp_path / "pool.model"
        env.update(ZFSAGA_ZFS=f"model:{path}", ZFSAGA_MODEL_POOLS=POOL)
        yield Devices(SharedModelZfs(path, pools=(POOL,)), tmp_path,
                      Daemon(destdir, "zfsaga", env), False)
        return
    dev = Devices(real_zfs(), tmp_path, Daemon(destdir, "zfsaga", env), True)
    try:
        yield dev
    finally:
        for pool in dev.made:
            subprocess.run(["zpool", "destroy", "-f", pool], capture_output=True)


def _checksum(dev: Devices, sr: str, key: str) -> str | None:
    """The volume's data (real ZFS only: the model holds no data)."""
    if not dev.real:
        return None
    path = dev.zfs.device_path(f"{sr}/{key}", timeout=120)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _fill(dev: Devices, sr: str, key: str) -> None:
    if dev.real:
        with open(dev.zfs.device_path(f"{sr}/{key}", timeout=120), "r+b") as f:
            f.write(os.urandom(3 * MiB))
            os.fsync(f.fileno())


def test_an_sr_on_devices_is_made_exported_imported_and_destroyed(devices: Devices) -> None:
    dev = devices
    a, b = dev.device("a"), dev.device("b")
    config = dev.create(devices=f"{a}, {b}", layout="mirror", compression="lz4")
    assert config["dataset"] == dev.pool and config["pool_guid"].isdigit()
    assert config["devices"] == f"{a},{b}" and config["layout"] == "mirror"
    sr = dev.xapi.call("SR.attach", configuration=config)
    assert sr == dev.pool
    # xapi's retry of the same SR.create (its answer lost) is answered the same, with nothing
    # new made; another SR's create on that pool name is refused.
    retry = dev.xapi.call("SR.create", uuid=dev.uuids[0], name="on devices",
                          description="a pool of its own",
                          configuration={"devices": f"{a},{b}", "layout": "mirror",
                                         "compression": "lz4", "pool": dev.pool})
    assert retry == config
    with pytest.raises(ScriptError):
        dev.create(devices=f"{a},{b}", layout="mirror")
    stat = dev.xapi.call("SR.stat", sr=sr)
    assert stat["name"] == "on devices" and stat["health"] == ["Healthy", ""]
    vol = dev.xapi.call("Volume.create", sr=sr, name="disk", description="", size=8 * MiB,
                        sharable=False)
    _fill(dev, sr, vol["key"])
    snap = dev.xapi.call("Volume.snapshot", sr=sr, key=vol["key"])
    data = _checksum(dev, sr, vol["key"])
    props = dev.zfs.get_props(f"{sr}/{vol['key']}", ["compression"])
    assert props["compression"].value == "lz4"

    assert dev.xapi.call("SR.detach", sr=sr) is None
    assert dev.zfs.pool_guid(dev.pool) is None  # exported
    with pytest.raises(ScriptError) as err:
        dev.xapi.call("SR.stat", sr=sr)
    assert err.value.name == "Sr_not_attached"

    assert dev.xapi.call("SR.attach", configuration=config) == sr  # imports it
    assert dev.zfs.pool_guid(dev.pool) == config["pool_guid"]
    assert dev.xapi.call("SR.attach", configuration=config) == sr  # idempotent
    keys = sorted(v["key"] for v in dev.xapi.call("SR.ls", sr=sr))
    assert keys == sorted([vol["key"], snap["key"]])
    assert _checksum(dev, sr, vol["key"]) == data

    for key in (vol["key"], snap["key"]):
        dev.xapi.call("Volume.destroy", sr=sr, key=key)
    assert dev.xapi.call("SR.destroy", sr=sr) is None
    assert dev.zfs.pool_guid(dev.pool) is None
    assert dev.host_sagas() == [("pool.create", "succeeded"), ("pool.export", "succeeded"),
                                ("pool.import", "succeeded"), ("pool.destroy", "succeeded")]
    # An operator sees the host's sagas with the CLI.
    env = {**os.environ, **dev.xapi.env}
    out = subprocess.run([sys.executable, "-m", "zfsaga.cli", "--host", "--json", "list",
                          "--all"], capture_output=True, text=True, env=env, check=True)
    listed = json.loads(out.stdout)
    assert sorted(row["kind"] for row in listed) == sorted(k for k, _ in dev.host_sagas())
    # The devices are free again: a new SR takes them without any force.
    again = dev.create(devices=a, pool=dev.pool + "b")
    assert again["layout"] == "stripe"


def test_a_pool_holding_what_zfsaga_did_not_make_is_kept(devices: Devices) -> None:
    """Someone made a filesystem on the SR's pool: detach leaves the pool imported, destroy
    unmarks the SR and keeps the pool and that filesystem."""
    if devices.real:
        real_more("the model holds the same rule; the real flow above exports and destroys a made pool")
    dev = devices
    config = dev.create(devices=dev.device("a"), sync="disabled", compression="lz4")
    sr = dev.xapi.call("SR.attach", configuration=config)
    dev.zfs.create_filesystem(f"{sr}/admins", {"test:born": "admin"})
    dev.xapi.call("SR.detach", sr=sr)
    assert dev.zfs.pool_guid(dev.pool) == config["pool_guid"]
    dev.xapi.call("SR.destroy", sr=sr)
    assert dev.zfs.pool_guid(dev.pool) == config["pool_guid"]
    assert dev.zfs.user_props(f"{sr}/admins")["test:born"] == "admin"
    assert dev.zfs.user_props(sr) == {}  # no zfsaga mark left, nor its record (issue 18)
    # The pool stays, with ZFS's own values: the admin's filesystem no longer loses writes.
    natives = ("snapdev", "sync", "compression")
    assert {p: v.local for p, v in dev.zfs.get_props(sr, natives).items()} == \
        dict.fromkeys(natives)
    assert [kind for kind, _ in dev.host_sagas()] == ["pool.create"]


def test_bad_device_configurations_change_nothing(devices: Devices) -> None:
    if devices.real:
        real_more("every bad configuration runs on the model; the real flow proves zpool's own refusals are typed")
    dev = devices
    a, b = dev.device("a"), dev.device("b")
    taken = dev.create(devices=b, pool=dev.pool + "t")  # b now belongs to a pool
    before = dev.pools()
    bad = [
        {"devices": "relative/path"},
        {"devices": f"{dev.tmp}/../a"},
        {"devices": "/dev/x;rm -rf /"},
        {"devices": f"{dev.tmp}/no-such-device"},
        {"devices": ""},
        {"devices": f"{a},{dev.device('c')}"},  # several, no layout
        {"devices": a, "layout": "mirror"},
        {"devices": f"{a},{a}", "layout": "mirror"},
        {"devices": a, "layout": "raid5"},
        {"devices": a, "ashift": "17"},
        {"devices": a, "pool": "mirror"},
        {"devices": a, "pool": "-f"},
        {"devices": a, "pool": "x@y"},
        {"devices": a, "dataset": f"{POOL}/elsewhere"},
        {"devices": a, "volblocksize": "512"},  # below the 4K sectors assumed
        {"dataset": POOL, "layout": "mirror"},  # pool keys without devices
        {"devices": b},  # in a pool already: zpool refuses, never forced
        {"devices": a, "pool": taken["pool"]},  # the name of an imported pool
    ]
    # Every one on the model; on real ZFS (seconds a call in the guest) a hostile name, a
    # missing device and the two that reach ZFS.
    for config in bad if not dev.real else [bad[2], bad[3], *bad[-2:]]:
        with pytest.raises(ScriptError) as err:
            dev.xapi.call("SR.create", uuid=str(uuid.uuid4()), name="n", description="",
                          configuration={"pool": dev.pool, **config})
        assert err.value.params and err.value.params[-1], config
        assert dev.pools() == before, config
    exported = dev.zfs.pool_guid(taken["pool"])
    for odd in ({"dataset": POOL}, {"pool_guid": "12a"}, {"pool": "x;y", "dataset": "x;y"},
                {"devices": "../b"}):  # a device-config edited by hand: refused, not imported
        with pytest.raises(ScriptError) as err:
            dev.xapi.call("SR.attach", configuration={**taken, **odd})
        assert err.value.name == "Invalid_argument", odd
    assert dev.zfs.pool_guid(taken["pool"]) == exported
    with pytest.raises(ScriptError) as err:  # an import by a guid that is no pool
        dev.xapi.call("SR.attach", configuration={**taken, "pool": dev.pool + "z",
                                                  "dataset": dev.pool + "z",
                                                  "pool_guid": "12345"})
    assert dev.pools() == before
    kinds = dev.host_sagas()
    assert kinds[0] == ("pool.create", "succeeded")
    # The device in use and the lost guid reached ZFS: each saga compensated, nothing made.
    assert sorted(kinds[1:]) == [("pool.create", "compensated"), ("pool.import", "compensated")]


def test_an_sr_create_killed_mid_saga_is_finished_by_xapis_retry(devices: Devices) -> None:
    """SR.create dies (as kill -9) just after `zpool create` returned, before the SR's mark:
    xapi's retry of the same call finishes the orphan from the host's journal and answers
    with the SR; a detach killed after its export is finished by the next attach's import."""
    if devices.real:
        real_more("the model kills the same calls at the same point")
    dev = devices
    a = dev.device("a")
    dying = Daemon(dev.xapi.destdir, "zfsaga",
                   {**dev.xapi.env, "ZFSAGA_FAULTS": "crash@zfs:after:create_pool"})
    dev.made.append(dev.pool)
    dev.uuids.append(str(uuid.uuid4()))
    args = dict(uuid=dev.uuids[-1], name="n", description="",
                configuration={"devices": a, "pool": dev.pool})
    with pytest.raises(ScriptError):
        dying.call("SR.create", **args)
    assert dev.host_sagas() == [("pool.create", "running")]
    assert dev.zfs.pool_guid(dev.pool)  # made, not marked yet
    config = dev.xapi.call("SR.create", **args)
    assert dev.host_sagas() == [("pool.create", "succeeded")]
    sr = dev.xapi.call("SR.attach", configuration=config)
    assert "org.zfsaga:sr" in dev.zfs.user_props(sr)

    dying = Daemon(dev.xapi.destdir, "zfsaga",
                   {**dev.xapi.env, "ZFSAGA_FAULTS": "crash@zfs:after:export_pool"})
    with pytest.raises(ScriptError):
        dying.call("SR.detach", sr=sr)
    assert dev.zfs.pool_guid(dev.pool) is None
    assert dev.xapi.call("SR.attach", configuration=config) == sr
    assert [k for k, _ in dev.host_sagas()] == ["pool.create", "pool.export", "pool.import"]
    assert {st for _, st in dev.host_sagas()} == {"succeeded"}


def test_a_pool_not_imported_is_found_by_probing_its_devices(devices: Devices) -> None:
    """After a host reinstall (or a detach) the SR's pool is not imported: SR.probe with its
    devices finds it by its labels, imports nothing, and its configuration attaches it."""
    if devices.real:
        real_more("the model probes the same devices; run once on real ZFS, where zpool "
                  "import's listing is parsed")
    dev = devices
    a, other = dev.device("a"), dev.device("other")
    config = dev.create(devices=a)
    sr = dev.xapi.call("SR.attach", configuration=config)
    dev.xapi.call("SR.detach", sr=sr)
    assert dev.xapi.call("SR.probe", configuration={"devices": other}) == []
    [found] = dev.xapi.call("SR.probe", configuration={"devices": a})
    assert found["configuration"]["pool_guid"] == config["pool_guid"]
    assert found["configuration"]["dataset"] == dev.pool and found["complete"] is True
    assert dev.zfs.pool_guid(dev.pool) is None  # a probe imports nothing
    assert dev.xapi.call("SR.attach", configuration=found["configuration"]) == sr
    assert dev.xapi.call("SR.stat", sr=sr)["uuid"] == dev.uuids[-1]
    for bad in ("../a", "a;b", ""):
        with pytest.raises(ScriptError) as err:
            dev.xapi.call("SR.probe", configuration={"devices": bad})
        assert err.value.name == "Invalid_argument"
