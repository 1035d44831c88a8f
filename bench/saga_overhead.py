"""Benchmark: what the saga engine costs on top of the ZFS commands it wraps.

For the revert saga, on SRs of growing size, it runs in the same process:
  baseline  the seven mutations of a revert by hand, through the ZFS layer, nothing else;
  saga      the same revert through the engine (journal, locks, probes, re-probes).
It prints wall time per revert, the ratio saga/baseline, and the ZFS calls each makes (reads
with the listings of the whole SR and the runs of the zfs CLI), so a lookup that grows with
the SR shows up as a call count or a ratio that climbs with the SR's size.

Backends: the in-memory model always; real ZFS when /dev/zfs exists (run it in the guest:
`make bench`). Usage: bench/saga_overhead.py [--sizes 10,100,1000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zfsaga.sagas import volume_revert as revert  # noqa: E402
from zfsaga.steps import srs  # noqa: E402
from zfsaga.sagas.engine import Engine  # noqa: E402
from zfsaga.state.journal import Journal  # noqa: E402
from zfsaga.steps.base import OWNER, RETIRED  # noqa: E402
from zfsaga.steps.zfs.interface import Zfs, ZfsHooks  # noqa: E402

MiB = 1 << 20
POOL = os.environ.get("ZFSAGA_TEST_POOL", "zfsagatest")


class CountingHooks(ZfsHooks):
    """Counts every ZFS call by operation, and the listings of a whole SR (the reads whose
    cost grows with it). On real ZFS, get_props and list_tree each run the zfs CLI; the rest
    are libzfs_core ioctls."""

    def __init__(self, sr: str) -> None:
        super().__init__()
        self.sr = sr
        self.ops: collections.Counter[str] = collections.Counter()
        self.sr_listings = 0

    def before(self, op: str, name: str, mutating: bool) -> None:
        super().before(op, name, mutating)
        self.ops[op] += 1
        self.sr_listings += op == "list_tree" and name == self.sr

    @property
    def cli_runs(self) -> int:
        return self.ops["get_props"] + self.ops["list_tree"]


def build_sr(zfs: Zfs, sr: str, size: int) -> str:
    """An SR of `size` VDIs, each with a snapshot; the first has two (s1 older, s2 newer)."""
    zfs.create_filesystem(sr)
    srs.adopt(zfs, sr)
    for i in range(size):
        vdi = f"{sr}/vdi{i}"
        zfs.create_zvol(vdi, 1 * MiB)
        zfs.snapshot([f"{vdi}@s1"])
    zfs.snapshot([f"{sr}/vdi0@s2"])
    return f"{sr}/vdi0"


def bare_revert(zfs: Zfs, vdi: str) -> None:
    """The revert's mutations and nothing more: what a careful admin would type."""
    token = uuid.uuid4().hex[:8]
    snap, fresh, aside, tag = f"{vdi}@s1", f"{vdi}.revert-{token}", f"{vdi}.old-{token}", token
    zfs.hold(snap, tag)
    zfs.clone(snap, fresh, {OWNER: f"bench/{token}"})
    zfs.rename(vdi, aside)
    zfs.rename(fresh, vdi)
    zfs.promote(vdi)
    zfs.set_props(aside, {RETIRED: token})  # s2 still lives on the old head: keep it hidden
    zfs.release(f"{vdi}@s1", tag)


def timed(runs: int, fn: Callable[[], None]) -> float:
    """Median seconds of fn over runs."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, make_zfs: Callable[[], Zfs], root: str, sizes: list[int],
            repeat: int, cleanup: Callable[[str], None]) -> None:
    print(f"\n{name}: revert of one VDI, median of {repeat}")
    print(f"{'VDIs':>6} {'baseline ms':>12} {'saga ms':>9} {'ratio':>6} "
          f"{'calls bare':>10} {'calls saga':>10} {'CLI bare':>8} {'CLI saga':>8} "
          f"{'SR listings':>11}")
    for size in sizes:
        zfs = make_zfs()
        base_sr, saga_sr = f"{root}/b{size}", f"{root}/s{size}"
        try:
            base_vdi = build_sr(zfs, base_sr, size)
            saga_vdi = build_sr(zfs, saga_sr, size)
            with tempfile.TemporaryDirectory() as tmp:
                engine = Engine(zfs, Journal(Path(tmp) / "journal.db"), tmp, lock_wait=5)
                try:
                    bare_hooks, saga_hooks = CountingHooks(base_sr), CountingHooks(saga_sr)
                    zfs.hooks = bare_hooks
                    bare = timed(repeat, lambda: bare_revert(zfs, base_vdi))
                    zfs.hooks = saga_hooks

                    def saga() -> None:
                        outcome = revert.start(engine, saga_sr, saga_vdi, f"{saga_vdi}@s1")
                        assert outcome.status == "succeeded", outcome
                    took = timed(repeat, saga)
                finally:
                    engine.journal.close()
            print(f"{size:>6} {bare * 1e3:>12.1f} {took * 1e3:>9.1f} {took / bare:>6.1f} "
                  f"{bare_hooks.calls / repeat:>10.1f} {saga_hooks.calls / repeat:>10.1f} "
                  f"{bare_hooks.cli_runs / repeat:>8.1f} {saga_hooks.cli_runs / repeat:>8.1f} "
                  f"{saga_hooks.sr_listings / repeat:>11.1f}")
        finally:
            zfs.hooks = ZfsHooks()
            cleanup(base_sr)
            cleanup(saga_sr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--real-sizes", default="10,100")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("ZFSAGA_LOG_LEVEL", "WARNING")

    from zfsaga.steps.zfs.model import ModelZfs

    model = ModelZfs(pools=(POOL,))
    model.create_filesystem(f"{POOL}/bench")
    measure("model (in memory; the journal is real SQLite)", lambda: model, f"{POOL}/bench",
            [int(s) for s in args.sizes.split(",")], args.repeat, cleanup=lambda sr: None)

    if os.path.exists("/dev/zfs"):
        import subprocess

        from zfsaga.steps.zfs.real import RealZfs

        root = f"{POOL}/bench-{uuid.uuid4().hex[:6]}"
        real = RealZfs()
        real.create_filesystem(root)
        try:
            measure("real ZFS", lambda: real, root,
                    [int(s) for s in args.real_sizes.split(",")], args.repeat,
                    cleanup=lambda sr: subprocess.run(["zfs", "destroy", "-r", "-R", sr],
                                                      capture_output=True, check=False))
        finally:
            subprocess.run(["zfs", "destroy", "-r", "-R", root], capture_output=True,
                           check=False)
    else:
        print("\nreal ZFS: skipped (no /dev/zfs here; `make bench` runs this in the guest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
