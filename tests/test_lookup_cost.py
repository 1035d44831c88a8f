"""What xapi pays to find one VDI, on real ZFS, at 10 VDIs and at a few hundred: Volume.stat
(called before every datapath step) through the installed script, with every `zfs` and
`zpool` process it starts counted by a shim the layer is pointed at. The count and the
arguments must not change with the SR's size, and no call may list the SR (`-r`). The model's
twin, by ZFS-layer calls at 10 and 400 VDIs, is tests/test_plugin_revert.py."""
from __future__ import annotations

import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import POOL, destroy_tree, real_zfs
from tests.xapi_daemon import Daemon
from zfsaga.steps import meta, srs

MiB = 1 << 20
SHIM = """#!/bin/sh
echo "$(basename "$0") $*" >> {log}
exec {real} "$@"
"""


def _shim(tmp_path, name: str, log) -> str:
    path = tmp_path / name
    path.write_text(SHIM.format(log=log, real=f"/sbin/{name}"))
    path.chmod(0o755)
    return str(path)


@pytest.mark.realzfs
def test_a_lookup_starts_the_same_processes_at_10_and_at_200_vdis(destdir, tmp_path) -> None:
    log = tmp_path / "calls.log"
    env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(tmp_path / "state"),
           "ZFSAGA_ZFS_BIN": _shim(tmp_path, "zfs", log),
           "ZFSAGA_ZPOOL_BIN": _shim(tmp_path, "zpool", log)}
    xapi = Daemon(destdir, "zfsaga", env)
    zfs = real_zfs()
    root = f"{POOL}/lc{uuid.uuid4().hex[:8]}"
    zfs.create_filesystem(root)
    # volmode=none: hundreds of zvols without hundreds of devices for udev to make (a lookup
    # reads properties only). The SR, its volume and snapshot are made as the plugin makes
    # them (marked, keyed), through the layer: the plugin's own calls are seconds each here.
    subprocess.run(["zfs", "create", "-o", "volmode=none", f"{root}/sr"], check=True)
    try:
        sr = f"{root}/sr"
        srs.adopt(zfs, sr)
        zfs.create_zvol(f"{sr}/k0", MiB, props={meta.KEY: "k0"})
        zfs.snapshot([f"{sr}/k0@s0"], {meta.KEY: "k0@s0"})
        vol, snap = {"key": "k0"}, {"key": "k0@s0"}

        def bulk(first: int, last: int) -> None:
            # Concurrent creates share transaction groups: hundreds in seconds, not minutes.
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: zfs.create_zvol(f"{sr}/bulk{i}", MiB,
                                                        props={meta.KEY: f"bulk{i}"}),
                              range(first, last)))

        def cost() -> dict:
            out = {}
            for what, key in (("volume", vol["key"]), ("snapshot", snap["key"])):
                log.write_text("")
                started = time.monotonic()
                assert xapi.call("Volume.stat", sr=sr, key=key)["key"] == key
                out[what] = (log.read_text().splitlines(), time.monotonic() - started)
            return out

        bulk(0, 8)
        small = cost()
        began = time.monotonic()
        bulk(8, 198)
        made = time.monotonic() - began
        assert len(xapi.call("SR.ls", sr=sr)) == 200
        big = cost()
        for what in ("volume", "snapshot"):
            assert big[what][0] == small[what][0], what  # the same processes, same arguments
            assert not any(" -r" in line for line in big[what][0]), big[what][0]
        print(f"\nlookup cost [real ZFS]: Volume.stat of a volume starts "
              f"{len(big['volume'][0])} zfs process(es) at 10 and at 200 VDIs "
              f"({small['volume'][1]:.2f} s, {big['volume'][1]:.2f} s); of a snapshot "
              f"{len(big['snapshot'][0])} ({small['snapshot'][1]:.2f} s, "
              f"{big['snapshot'][1]:.2f} s); none lists the SR "
              f"(190 volumes made in {made:.0f} s)")
    finally:
        destroy_tree(root)
