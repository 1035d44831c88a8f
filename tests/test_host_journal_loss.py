"""A lost host journal (its directory deleted, the host reinstalled, a -wal lost) while a pool
saga was unfinished or just after it: the pool zfsaga was making carries its own mark,
`org.zfsaga:made-pool` = "<saga id>/<step>", born in the same `zpool create`. xapi's retry of
the same SR.create takes that pool over when it holds nothing but what zfsaga makes, and
completes; `zfsaga --host recover` lists such pools and destroys nothing; `zfsaga --host list`
does not crash. On the model, through the installed entry points."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import POOL
from tests.xapi_daemon import Daemon, ScriptError
from zfsaga.steps.zfs.shared_model import SharedModelZfs

MiB = 1 << 20
MADE_POOL = "org.zfsaga:made-pool"


class Host:
    def __init__(self, destdir, tmp_path) -> None:
        self.tmp = tmp_path
        path = tmp_path / "pool.model"
        self.env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(tmp_path / "state"),
                    "ZFSAGA_HOST_STATE_DIR": str(tmp_path / "host"),
                    "ZFSAGA_ZFS": f"model:{path}", "ZFSAGA_MODEL_POOLS": POOL}
        self.zfs = SharedModelZfs(path, pools=(POOL,))
        self.xapi = Daemon(destdir, "zfsaga", self.env)
        self.pool = f"zfsagadev{uuid.uuid4().hex[:6]}"
        self.uuid = str(uuid.uuid4())

    def device(self, name: str) -> str:
        path = self.tmp / name
        with open(path, "wb") as f:
            f.truncate(128 * MiB)
        return str(path)

    def args(self, device: str) -> dict:
        return dict(uuid=self.uuid, name="n", description="d",
                    configuration={"devices": device, "pool": self.pool})

    def crash(self, point: str, device: str) -> None:
        dying = Daemon(self.xapi.destdir, "zfsaga", {**self.env, "ZFSAGA_FAULTS": point})
        with pytest.raises(ScriptError):
            dying.call("SR.create", **self.args(device))

    def lose_journal(self) -> None:
        gone = [p for p in (self.tmp / "host").iterdir() if p.name.startswith("journal.db")]
        assert gone
        for p in gone:
            p.unlink()

    def cli(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "zfsaga.cli", "--host", *argv],
                              capture_output=True, text=True, env={**os.environ, **self.env})


@pytest.fixture
def host(destdir, tmp_path) -> Host:
    return Host(destdir, tmp_path)


# The points after which the pool exists but the host journal's record of its making is lost:
# just after `zpool create` returned, and just after the SR's mark (the saga not yet closed).
MADE_NOT_MARKED = "crash@zfs:after:create_pool"
MARKED_NOT_CLOSED = "crash@zfs:after:set_props"


@pytest.mark.parametrize("point", [MADE_NOT_MARKED, MARKED_NOT_CLOSED])
def test_a_retried_create_takes_over_the_pool_its_lost_saga_made(host: Host, point) -> None:
    a = host.device("a")
    host.crash(point, a)
    made = host.zfs.user_props(host.pool)[MADE_POOL]
    host.lose_journal()
    config = host.xapi.call("SR.create", **host.args(a))
    assert config["pool"] == host.pool and config["pool_guid"] == host.zfs.pool_guid(host.pool)
    sr = host.xapi.call("SR.attach", configuration=config)
    assert host.xapi.call("SR.stat", sr=sr)["uuid"] == host.uuid
    props = host.zfs.user_props(host.pool)
    assert "org.zfsaga:sr" in props and props[MADE_POOL] == made  # still zfsaga's to destroy
    assert host.xapi.call("SR.create", **host.args(a)) == config  # and a retry again: same
    vol = host.xapi.call("Volume.create", sr=sr, name="v", description="", size=8 * MiB,
                         sharable=False)
    host.xapi.call("Volume.destroy", sr=sr, key=vol["key"])
    host.xapi.call("SR.destroy", sr=sr)
    assert host.zfs.pool_guid(host.pool) is None  # made by zfsaga: destroyed with the SR


def test_a_pool_of_a_lost_saga_holding_someones_data_is_refused_and_kept(host: Host) -> None:
    a = host.device("a")
    host.crash(MADE_NOT_MARKED, a)
    host.zfs.create_filesystem(f"{host.pool}/admins", {"test:born": "admin"})
    host.lose_journal()
    before = host.zfs.user_props(host.pool)
    with pytest.raises(ScriptError) as err:
        host.xapi.call("SR.create", **host.args(a))
    message = err.value.params[-1]
    assert host.pool in message and before[MADE_POOL] in message
    assert "zfsaga --host recover" in message
    assert host.zfs.user_props(host.pool) == before
    assert host.zfs.user_props(f"{host.pool}/admins")["test:born"] == "admin"


def test_another_srs_create_on_a_lost_sagas_pool_is_refused(host: Host) -> None:
    a = host.device("a")
    host.crash(MADE_NOT_MARKED, a)
    host.lose_journal()
    before = host.zfs.user_props(host.pool)
    with pytest.raises(ScriptError) as err:
        host.xapi.call("SR.create", **{**host.args(a), "uuid": str(uuid.uuid4())})
    assert err.value.name == "Invalid_argument"
    assert host.zfs.user_props(host.pool) == before


def test_host_list_and_recover_after_the_loss(host: Host) -> None:
    a = host.device("a")
    host.crash(MADE_NOT_MARKED, a)
    made = host.zfs.user_props(host.pool)[MADE_POOL]
    host.lose_journal()
    listed = host.cli("--json", "list", "--all")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    found = host.cli("--json", "recover")
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    assert report["unknown_pools"] == [{"pool": host.pool, "made_pool": made,
                                        "saga": made.split("/")[0],
                                        "sr_uuid": host.uuid, "others": []}]
    text = host.cli("recover")
    assert text.returncode == 0 and host.pool in text.stdout and made in text.stdout
    assert host.zfs.pool_guid(host.pool)  # nothing destroyed


def test_a_takeover_killed_mid_way_is_finished_by_the_next_retry(host: Host) -> None:
    a = host.device("a")
    host.crash(MADE_NOT_MARKED, a)
    host.lose_journal()
    host.crash("crash@zfs:before:set_props", a)  # the takeover cut short before its mark
    config = host.xapi.call("SR.create", **host.args(a))
    assert host.xapi.call("SR.attach", configuration=config) == host.pool
    assert "org.zfsaga:sr" in host.zfs.user_props(host.pool)
    listed = json.loads(host.cli("--json", "list", "--all").stdout)
    assert [(row["kind"], row["status"]) for row in listed] == [("pool.create", "succeeded")]
