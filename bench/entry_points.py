"""Benchmark: what one SMAPIv3 call costs as xapi-storage-script makes it (a new process, JSON
on stdin, JSON on stdout), for each installed verb, against the floor every call pays: a bare
`python3 -c pass`. The issue's target for read-only verbs is at most 2x that floor plus one
`zfs get` (printed too where /dev/zfs exists).

It installs into a scratch DESTDIR first and runs the installed scripts with the host's
/usr/bin/python3, so it measures what a dom0 would run. Usage: bench/entry_points.py [--repeat 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"
CALLS = {"Plugin.Query": '{"dbg": "bench"}', "Plugin.diagnostics": '{"dbg": "bench"}'}


def timed(argv: list[str], stdin: str, repeat: int) -> float:
    """Median wall time of `repeat` runs, in ms (after one warm-up run)."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ZFSAGA_SYSLOG": "0"}
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        out = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env)
        took = time.perf_counter() - start
        if out.returncode != 0:
            raise SystemExit(f"bench: {argv[0]} failed: {out.stdout}{out.stderr}")
        if i:
            times.append(took)
    return statistics.median(times) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as dest:
        subprocess.run([sys.executable, str(ROOT / "tools" / "install.py"), "install",
                        "--destdir", dest], check=True, capture_output=True)
        here = Path(dest, "usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.zfsaga")
        floor = timed([PYTHON, "-c", "pass"], "", args.repeat)
        zfs_get = None
        if os.path.exists("/dev/zfs"):
            pool = subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True,
                                  text=True).stdout.split()
            if pool:
                zfs_get = timed(["zfs", "get", "-Hp", "guid", pool[0]], "", args.repeat)
        print(f"entry points, median of {args.repeat} runs each (ms); floor: python3 -c pass "
              f"= {floor:.1f}" + (f", zfs get = {zfs_get:.1f}" if zfs_get else ""))
        print(f"{'verb':<22} {'ms':>7} {'x floor':>8} {'target ms':>10}")
        for verb, stdin in CALLS.items():
            took = timed([str(here / verb), "--json"], stdin, args.repeat)
            target = 2 * floor + (zfs_get or 0)
            print(f"{verb:<22} {took:>7.1f} {took / floor:>8.2f} {target:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
