"""A disk that fails in the middle of a saga (issue 9, part 3), on real ZFS in the guest.

The pool sits on a device-mapper map over a loop device. Mid-saga (the plugin paused by CI's
fault switch just after its first ZFS mutation), the map is swapped for dm-flakey with
`error_writes`: every write fails, reads still work, as a dying disk or a pulled cable behind a
cache does. The journal lives where it does on a host, on that same pool.

zfsaga keeps the pool's `failmode` as the admin set it (SR.create never changes it) and answers
the same under `wait` (ZFS's default) and `continue`, both tested: a mutating ZFS call is a
sync task, which waits for its transaction group whatever the failmode (observed on 2.1.11:
under `continue` the pool even still reads ONLINE), and the journal's writes wait on the same
pool. So nothing reports success for work that did not happen; xapi is answered within the
call deadline (plugin/deadline.py) with a Busy error that says what it waited for; the work
goes on in its process, and after the disk is back and `zpool clear`, that process finishes
the saga. (`failmode=panic` panics the host: not zfsaga's to choose.)

Checked: the caller's answer within the deadline, no success for undone work, the pool
suspended while the disk fails, the saga terminal after the clear, the SR exactly its before-
or after-state with every volume's data read back by checksum, the journal well-formed, one
more recovery with nothing to do."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.xapi_daemon import Daemon, ScriptError

POOL = "zfsagafl"
MAP = "zfsaga-failing"
DEADLINE = 20.0
MiB = 1 << 20


def sh(*argv: str, timeout: float = 120) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True,
                          timeout=timeout).stdout


class FailingDisk:
    """A loop device over a sparse file, behind a device-mapper map the test can fail."""

    def __init__(self, image: Path) -> None:
        sh("modprobe", "-a", "loop", "dm-mod", "dm-flakey")
        subprocess.run(["truncate", "-s", "384M", str(image)], check=True)
        self.loop = sh("losetup", "-f", "--show", str(image)).strip()
        self.sectors = int(sh("blockdev", "--getsz", self.loop))
        sh("dmsetup", "create", MAP, "--table", self._table(healthy=True))
        self.path = f"/dev/mapper/{MAP}"

    def _table(self, healthy: bool) -> str:
        if healthy:
            return f"0 {self.sectors} linear {self.loop} 0"
        # Always down, for an hour: writes fail with EIO, reads pass.
        return f"0 {self.sectors} flakey {self.loop} 0 0 3600 1 error_writes"

    def swap(self, healthy: bool) -> None:
        sh("dmsetup", "load", MAP, "--table", self._table(healthy))
        sh("dmsetup", "resume", MAP)

    def remove(self) -> None:
        # The disk back first: a pool still suspended would hang its destroy, and with it the
        # whole tier, when an assertion failed mid-fault.
        try:
            self.swap(healthy=True)
        except subprocess.CalledProcessError:
            pass  # the map is not there: nothing to give back
        subprocess.run(["zpool", "clear", POOL], capture_output=True, timeout=300)
        subprocess.run(["zpool", "destroy", "-f", POOL], capture_output=True, timeout=300)
        subprocess.run(["dmsetup", "remove", "--retry", MAP], capture_output=True)
        subprocess.run(["losetup", "-d", self.loop], capture_output=True)


def pool_health() -> str:
    try:
        return sh("zpool", "list", "-H", "-o", "health", POOL, timeout=15).strip()
    except subprocess.TimeoutExpired:
        return "(zpool list did not answer)"


def checksum(device: str, size: int) -> str:
    with open(device, "rb") as f:
        return hashlib.sha256(f.read(size)).hexdigest()


def wait_for(path: Path, seconds: float) -> None:
    until = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < until, f"{path} never appeared"
        time.sleep(0.1)


def wait_gone(pid: int, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < until:
        time.sleep(0.2)
    return not os.path.exists(f"/proc/{pid}")


def journal_rows(sr: str) -> list:
    from zfsaga.backend import open_zfs
    from zfsaga.location import sr_state_dir
    from zfsaga.state.journal import Journal

    journal = Journal(sr_state_dir(open_zfs(), sr) / "journal.db")
    try:
        assert journal.check_well_formed() == []
        return journal.list()
    finally:
        journal.close()


@pytest.mark.realzfs
@pytest.mark.timeout(900)
@pytest.mark.parametrize("failmode", ["wait", "continue"])
def test_a_disk_that_fails_mid_saga(request, destdir, tmp_path: Path, failmode: str) -> None:
    from tests.conftest import summary_line
    from zfsaga.steps.zfs.real import RealZfs

    disk = FailingDisk(tmp_path / "disk.img")
    try:
        sh("zpool", "create", "-f", "-o", "cachefile=none", "-o", f"failmode={failmode}",
           "-m", f"/run/{POOL}", POOL, disk.path)
        sh("zfs", "create", f"{POOL}/sr")
        env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_CALL_DEADLINE": str(DEADLINE)}
        xapi = Daemon(destdir, "zfsaga", env)
        config = xapi.call("SR.create", uuid=str(uuid.uuid4()), name="failing", description="",
                           configuration={"dataset": f"{POOL}/sr"})
        sr = xapi.call("SR.attach", configuration=config)
        vol = xapi.call("Volume.create", sr=sr, name="data", description="", size=8 * MiB,
                        sharable=False)
        zfs = RealZfs()
        device = zfs.device_path(f"{sr}/{vol['key']}")
        with open(device, "r+b") as f:
            f.write(os.urandom(8 * MiB))
            f.flush()
            os.fsync(f.fileno())
        sh("zpool", "sync", POOL)
        data_sum = checksum(device, 8 * MiB)

        # Volume.clone of a writable volume: base snapshot, clone, deferred release. The disk
        # fails once the base snapshot is taken.
        pause = tmp_path / "pause"
        pause.mkdir()
        faulty = Daemon(destdir, "zfsaga", {**env, "ZFSAGA_FAULTS": "pause@zfs:after:snapshot",
                                            "ZFSAGA_PAUSE_DIR": str(pause)})
        args = tmp_path / "args.json"
        args.write_text(json.dumps({"dbg": "t", "sr": sr, "key": vol["key"]}))
        with open(args, encoding="utf-8") as stdin:
            call = subprocess.Popen([str(faulty.script("Volume.clone")), "--json"],
                                    stdin=stdin, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=faulty.env)
        wait_for(pause / "paused", 120)
        disk.swap(healthy=False)
        failed_at = time.monotonic()
        (pause / "go").touch()
        out, err = call.communicate(timeout=DEADLINE + 60)  # EOF: nothing holds its pipes
        answered = time.monotonic() - failed_at
        health = pool_health()
        assert call.returncode != 0, f"success reported while the disk failed: {out}"
        error = json.loads(out)
        assert answered < DEADLINE + 15, answered
        if failmode == "wait":
            assert error["params"][0] == "Busy" and "zpool status" in error["params"][1]
            assert health == "SUSPENDED", health
        worker = [int(w) for w in re.findall(r"in process (\d+)", error["params"][1])]

        # Another call on the SR meanwhile is answered within the deadline too, never Healthy.
        began = time.monotonic()
        try:
            seen = xapi.call("SR.stat", sr=sr)["health"][0]
        except ScriptError as exc:
            seen = exc.params[0]
        assert seen != "Healthy" and time.monotonic() - began < DEADLINE + 15, seen

        disk.swap(healthy=True)
        sh("zpool", "clear", POOL, timeout=300)
        assert pool_health() == "ONLINE"
        for pid in worker:  # the call's own process finishes the saga once the pool answers
            assert wait_gone(pid, 300), f"process {pid} still waiting after zpool clear"
        listed = {v["key"]: v for v in xapi.call("SR.ls", sr=sr)}  # the SR's first call
        [clone_row] = [r for r in journal_rows(sr) if r.kind == "volume.clone"]
        assert clone_row.status in ("succeeded", "compensated"), clone_row
        if clone_row.status == "succeeded":  # the after-state: the clone reads as the volume
            [clone_key] = set(listed) - {vol["key"]}
            assert checksum(zfs.device_path(f"{sr}/{clone_key}"), 8 * MiB) == data_sum
        else:  # the before-state: nothing of the clone, not even its hidden base snapshot
            assert set(listed) == {vol["key"]}
            assert [n for n in zfs.list_tree(sr, ["guid"]) if "@" in n] == []
        assert checksum(device, 8 * MiB) == data_sum
        assert all(r.terminal for r in journal_rows(sr))
        summary_line(request, f"disk fault [real ZFS, failmode={failmode}]: Volume.clone, "
                              f"writes failed after its first ZFS step: answered in "
                              f"{answered:.0f} s ({error['params'][0]}), pool {health}; after "
                              f"zpool clear the saga {clone_row.status}; violations: 0")
    finally:
        disk.remove()
