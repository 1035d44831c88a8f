"""Benchmark: eight Volume.create, then eight Volume.snapshot, all at once on one SR, as xapi
would start them (eight processes through the installed entry points), through the warm server
and with none (the fallback, in-process); beside them one call alone, for scale. It prints the
total wall time and how much of the calls' time was waiting for a lock: each saga logs how long
it waited for its SR's (or its volume's) lock (sagas/engine.py), summed here. Figures, not
pass/fail.

Volume.create runs inside its SR (the SR's lock shared, the new volume's own): eight run side by
side. Volume.snapshot takes its volume's lock and the SR's shared as well, so eight snapshots of
eight volumes run side by side too; whatever serialises them shows up as lock waiting.

Usage: bench/parallel.py [--real] [--calls 8]   (--real: on the guest's pool, `make bench`)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.entry_server import install_tree, listen_path, server_at  # noqa: E402

POOL = os.environ.get("ZFSAGA_TEST_POOL", "zfsagatest")
VOLUME = "usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.zfsaga"
WAITED = re.compile(r"waited ([0-9.]+) s for ")


class Plugin:
    def __init__(self, dest: Path, env: dict[str, str]) -> None:
        self.dir = dest / VOLUME
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env}

    def call(self, verb: str, **args) -> tuple[dict, float]:
        """(result, seconds this call waited for a lock)."""
        proc = subprocess.Popen([str(self.dir / verb), "--json"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env)
        out, err = proc.communicate(json.dumps({"dbg": "bench", **args}).encode())
        if proc.returncode != 0:
            raise SystemExit(f"bench: {verb} failed: {out.decode()} {err.decode()[-2000:]}")
        return json.loads(out), sum(float(m) for m in WAITED.findall(err.decode()))


def burst(plugin: Plugin, calls: list[tuple[str, dict]]) -> tuple[float, float, list]:
    """All the calls at once: (wall seconds, summed lock wait, results)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(len(calls)) as pool:
        done = list(pool.map(lambda c: plugin.call(c[0], **c[1]), calls))
    return time.perf_counter() - start, sum(w for _, w in done), [r for r, _ in done]


def one_way(plugin: Plugin, dataset: str, n: int) -> dict[str, float]:
    sr_uuid = str(uuid.uuid4())
    config, _ = plugin.call("SR.create", uuid=sr_uuid, name="bench", description="",
                            configuration={"dataset": dataset})
    sr, _ = plugin.call("SR.attach", configuration=config)
    t = time.perf_counter()
    alone, _ = plugin.call("Volume.create", sr=sr, name="alone", description="", size=1 << 20,
                           sharable=False)
    create_one = time.perf_counter() - t
    t = time.perf_counter()
    plugin.call("Volume.snapshot", sr=sr, key=alone["key"])
    snapshot_one = time.perf_counter() - t
    create_wall, create_wait, vols = burst(plugin, [
        ("Volume.create", {"sr": sr, "name": f"v{i}", "description": "", "size": 1 << 20,
                           "sharable": False}) for i in range(n)])
    snap_wall, snap_wait, _ = burst(plugin, [("Volume.snapshot", {"sr": sr, "key": v["key"]})
                                             for v in vols])
    return {"create_one": create_one, "create_wall": create_wall, "create_wait": create_wait,
            "snapshot_one": snapshot_one, "snapshot_wall": snap_wall,
            "snapshot_wait": snap_wait}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--calls", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zfsaga-parallel-"))
    dest = install_tree(work / "tree")
    rows = {}
    for way in ("server", "in-process"):
        env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(work / way / "state")}
        if args.real:
            dataset = f"{POOL}/bench-{uuid.uuid4().hex[:6]}"
            subprocess.run(["zfs", "create", "-p", dataset], check=True)
        else:
            model = work / way / "pool.model"
            model.parent.mkdir(parents=True)
            from zfsaga.steps.zfs.shared_model import SharedModelZfs

            SharedModelZfs(model, pools=(POOL,)).create_filesystem(f"{POOL}/bench")
            dataset = f"{POOL}/bench"
            env.update(ZFSAGA_ZFS=f"model:{model}", ZFSAGA_MODEL_POOLS=POOL)
        if way == "server":
            path = listen_path(dest, work / "run")
            with server_at(dest, path, work / "server.log"):
                rows[way] = one_way(Plugin(dest, {**env, "ZFSAGA_SOCKET": path}), dataset,
                                    args.calls)
        else:
            rows[way] = one_way(Plugin(dest, {**env, "ZFSAGA_SERVER": "0"}), dataset,
                                args.calls)
    n = args.calls
    print(f"{n} calls at once on one SR ({'real ZFS' if args.real else 'the model'}), "
          f"seconds; lock wait summed over the {n} calls")
    print(f"{'':12} {'verb':16} {'one alone':>10} {f'{n} at once':>10} {'x alone':>8} "
          f"{'lock wait':>10}")
    for way, r in rows.items():
        for verb, key in (("Volume.create", "create"), ("Volume.snapshot", "snapshot")):
            one, wall, wait = r[f"{key}_one"], r[f"{key}_wall"], r[f"{key}_wait"]
            print(f"{way:12} {verb:16} {one:10.2f} {wall:10.2f} {wall / one:8.2f} {wait:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
