"""Benchmark: the SR at scale (issue 20, section 4). Figures, not pass/fail.

  ls       SR.ls on SRs of growing size (volumes and snapshots, each with the keys xapi sets:
           name, description and xapi's other keys), against the bare listing SR.ls makes
           (the same ZFS read, alone): the plugin's own work on top of it, and the time per
           VDI at each size (linear: flat). On real ZFS (the guest, `/dev/zfs`) the listing
           is the `zfs get -r ... all` process; on the model (no /dev/zfs, or larger than
           --real-max) it is the file-shared model's read, as the host tests use it.
  journal  a saga's start (the engine opening the journal, the damage and witness checks,
           the recovery scan, recording the saga) with 100,000 finished sagas in the journal
           against an empty one, in the same process; then the journal file's size over
           rounds of sagas each followed by `zfsaga gc`.

Usage: bench/scale.py [ls|journal|all] [--sizes 100,1000,10000] [--real-sizes 100,1000]
                      [--finished 100000] [--repeat 5] [--profile]
(--sizes: the model's, '' for none; --real-sizes: real ZFS's, when /dev/zfs exists.)
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("ZFSAGA_LOG_LEVEL", "WARNING")

POOL = os.environ.get("ZFSAGA_TEST_POOL", "zfsagatest")
MiB = 1 << 20
#: xapi's keys as xapi sets them on a VDI (VDI.set_other_config and friends, stored by
#: Volume.set as user properties), besides name_label and description.
XAPI_KEYS = {"vdi-type": "user", "content_id": "", "folder": "/vms/web",
             "mirror": "null", "base_mirror": "", "xenstore_data": ""}


def median_time(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- SR.ls ------------------------------------------------------------------------------------
def fill_sr(zfs: Any, sr: str, vdis: int) -> None:
    """An SR of `vdis` VDIs: half volumes, half their snapshots, each with xapi's keys."""
    from zfsaga.steps import meta, srs

    zfs.create_filesystem(sr)
    srs.adopt(zfs, sr)
    for i in range(vdis // 2):
        key = str(uuid.uuid4())
        snap = str(uuid.uuid4())
        user = {meta.key_prop(k): meta.encode(v) for k, v in XAPI_KEYS.items()}
        zfs.create_zvol(f"{sr}/{key}", 1 * MiB, props={
            meta.KEY: key, meta.NAME: meta.encode(f"disk {i} of vm {i // 4}"),
            meta.DESCRIPTION: meta.encode("Created by XenCenter\nroot disk"), **user})
        zfs.snapshot([f"{sr}/{key}@{snap}"], props={
            meta.KEY: f"{key}@{snap}", meta.NAME: meta.encode(f"disk {i} snapshot"),
            meta.DESCRIPTION: meta.encode("before the upgrade"), **user})


def profile_top(fn: Callable[[], Any], lines: int = 12) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(lines)
    return "\n".join(out.getvalue().splitlines()[4:4 + lines + 6])


def measure_ls(where: str, zfs: Any, root: str, sizes: list[int], repeat: int,
               profile: bool) -> None:
    """SR.ls against the bare read it makes, per size."""
    from zfsaga.plugin import sr as sr_verbs
    from zfsaga.plugin.volumes import NATIVE
    from zfsaga.steps import srs

    print(f"\nSR.ls, {where}: median of {repeat}")
    print(HEADER)
    for size in sizes:
        sr = f"{root}/ls{size}"
        start = time.perf_counter()
        fill_sr(zfs, sr, size)
        print(f"({size} VDIs made in {time.perf_counter() - start:.0f} s)", flush=True)
        wanted = [*NATIVE, "guid", srs.SR_MARK]
        bare = bare_listing(zfs, sr, wanted)
        assert len(sr_verbs.ls("bench", sr)) == size
        report(size, repeat, bare, lambda: sr_verbs.ls("bench", sr))
        own_alone(zfs, sr, wanted, repeat, bare)
        if profile:
            print(profile_top(lambda: sr_verbs.ls("bench", sr)))


def own_alone(zfs: Any, sr: str, wanted: list[str], repeat: int,
              bare: Callable[[], Any]) -> None:
    """SR.ls's own work timed alone, on the output of one listing: on real ZFS the parse of
    `zfs get`'s output and the records; on the model the records. Two timings of a listing
    (seconds, in the guest) differ by more than this work, so their difference alone says
    little."""
    from zfsaga.plugin.volumes import no_collection, settled, volume_record
    from zfsaga.steps.zfs.real import RealZfs, _parse_all

    read = bare()
    if isinstance(zfs, RealZfs):
        def parse() -> dict:
            return _parse_all(read.stdout, wanted)
    else:
        def parse() -> dict:
            return read

    def own() -> list:
        with no_collection():
            tree = parse()
            native = {name: got[0] for name, got in tree.items()}
            mine = {name: got[1] for name, got in tree.items() if got[1]}
            return [volume_record(sr, name, props, user)
                    for name, props, user in settled(sr, native, mine)]

    took = median_time(repeat, own)
    listing = median_time(1, bare)
    print(f"{'':>6} own work alone: {took:.3f} s, {100 * took / listing:.1f}% of a listing "
          f"({listing:.3f} s), {1e6 * took / len(own()):.1f} us/VDI", flush=True)


def bare_listing(zfs: Any, sr: str, wanted: list[str]) -> Callable[[], Any]:
    """The read SR.ls makes, and nothing of the plugin's: on real ZFS the `zfs` process alone
    (its output unparsed); on the shared model its load and the described tree. With the
    collector paused, as SR.ls makes it (plugin/volumes.py, no_collection)."""
    from zfsaga.plugin.volumes import no_collection
    from zfsaga.steps.zfs.real import RealZfs

    def paused(read: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with no_collection():
                return read()
        return run

    if isinstance(zfs, RealZfs):
        from zfsaga.steps.zfs import process
        from zfsaga.steps.zfs.real import CLI_TIMEOUT, ZFS_BIN

        argv = [ZFS_BIN, "get", "-r", "-Hp", "-t", "filesystem,volume,snapshot", "-o",
                "name,property,value,source", "all", sr]
        return paused(lambda: process.run(argv, CLI_TIMEOUT))
    return paused(lambda: zfs.describe_tree(sr, wanted))


def bench_ls(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else []
    real_sizes = [int(s) for s in args.real_sizes.split(",")] if args.real_sizes else []
    if os.path.exists("/dev/zfs") and real_sizes:
        import subprocess

        from zfsaga.steps.zfs.real import RealZfs

        root = f"{POOL}/scale-{uuid.uuid4().hex[:6]}"
        os.environ["ZFSAGA_ZFS"] = "real"
        real = RealZfs(in_process=True)
        # volmode=none: thousands of zvols without thousands of devices for udev to make.
        subprocess.run(["zfs", "create", "-o", "volmode=none", root], check=True)
        try:
            start = time.perf_counter()
            measure_ls("real ZFS in this host (the guest)", real, root, real_sizes,
                       args.repeat, args.profile)
            print(f"(real ZFS part took {time.perf_counter() - start:.0f} s, creation included)")
        finally:
            subprocess.run(["zfs", "destroy", "-r", root], capture_output=True, check=False)
    else:
        print("\nSR.ls on real ZFS: skipped (no /dev/zfs here; run it in the guest)")
    if not sizes:
        return
    print(f"\nSR.ls, the file-shared model (ZFSAGA_ZFS=model:..., as the host tests), one "
          f"model file per size: median of {args.repeat}")
    print(HEADER)
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            measure_model_ls(Path(tmp), size, args.repeat, args.profile)


HEADER = (f"{'VDIs':>6} {'listing s':>10} {'SR.ls s':>9} {'own %':>6} {'us/VDI':>8} "
          f"{'own us/VDI':>10}")


def measure_model_ls(tmp: Path, size: int, repeat: int, profile: bool) -> None:
    """One SR of `size` VDIs alone in a shared model (filled in memory, saved once: the
    shared model saves its whole file at every change)."""
    from zfsaga.plugin import sr as sr_verbs
    from zfsaga.plugin.volumes import NATIVE
    from zfsaga.steps import srs
    from zfsaga.steps.zfs.model import ModelZfs
    from zfsaga.steps.zfs.shared_model import _STATE, SharedModelZfs

    os.environ["ZFSAGA_ZFS"] = f"model:{tmp}/model.pickle"
    os.environ["ZFSAGA_MODEL_POOLS"] = POOL
    filler = ModelZfs(pools=(POOL,))
    sr = f"{POOL}/ls{size}"
    fill_sr(filler, sr, size)
    shared = SharedModelZfs(tmp / "model.pickle", pools=(POOL,))
    for key in _STATE:
        setattr(shared, key, getattr(filler, key))
    with shared._locked():
        shared._save()
    bare = bare_listing(shared, sr, [*NATIVE, "guid", srs.SR_MARK])
    assert len(sr_verbs.ls("bench", sr)) == size
    report(size, repeat, bare, lambda: sr_verbs.ls("bench", sr))
    own_alone(shared, sr, [*NATIVE, "guid", srs.SR_MARK], repeat, bare)
    if profile:
        print(profile_top(lambda: sr_verbs.ls("bench", sr)))


def report(size: int, repeat: int, bare: Callable[[], Any], ls: Callable[[], Any]) -> None:
    """Both timed, interleaved and in turns first (drift in the host's load, and what the
    first leaves in ZFS's caches for the second, fall on both alike); one row."""
    t_bare: list[float] = []
    t_ls: list[float] = []
    for n in range(repeat):
        for times, fn in ((t_bare, bare), (t_ls, ls))[::1 if n % 2 == 0 else -1]:
            times.append(median_time(1, fn))
    b, l = statistics.median(t_bare), statistics.median(t_ls)
    print(f"{size:>6} {b:>10.3f} {l:>9.3f} {100 * (l - b) / b:>6.1f} "
          f"{1e6 * l / size:>8.1f} {1e6 * (l - b) / size:>10.1f}", flush=True)


# -- the journal ------------------------------------------------------------------------------
def template_saga(tmp: Path) -> tuple[tuple, list[tuple]]:
    """The saga row and events of one real Volume.create, run through the engine on the
    model: what each of the 100,000 finished sagas copies."""
    from zfsaga.sagas import volume_create
    from zfsaga.sagas.runner import open_engine
    from zfsaga.steps import srs
    from zfsaga.steps.zfs.model import ModelZfs

    zfs = ModelZfs(pools=(POOL,))
    sr = f"{POOL}/sr"
    zfs.create_filesystem(sr)
    ident = srs.adopt(zfs, sr)
    engine = open_engine(zfs, tmp / "template", lock_wait=5)
    outcome = volume_create.start(engine, srs.sr_key(ident.guid), sr, ident.guid, "disk", "",
                                  MiB, False)
    assert outcome.status == "succeeded", outcome
    db = engine.journal._db
    row = db.execute("SELECT * FROM saga").fetchone()
    events = db.execute("SELECT * FROM event").fetchall()
    engine.journal.close()
    return row, events


def fill_journal(path: Path, finished: int, row: tuple, events: list[tuple],
                 age_s: float = 0.0) -> None:
    """`finished` copies of the template saga, finished, each with its own id, resource and
    generation, in one transaction of the journal's own connection (a commit each would
    take minutes under synchronous=FULL, and measure nothing of interest)."""
    from zfsaga.state.journal import Journal

    journal = Journal(path)
    cols = [d[1] for d in journal._db.execute("PRAGMA table_info(saga)")]
    ecols = [d[1] for d in journal._db.execute("PRAGMA table_info(event)")]
    i_id, i_res, i_gen = cols.index("id"), cols.index("resource"), cols.index("gen")
    i_created, i_updated = cols.index("created"), cols.index("updated")
    e_id = ecols.index("saga_id")
    base_gen = journal.generation()
    now = time.time() - age_s
    sagas, evs = [], []
    for n in range(finished):
        sid = f"{int(now * 1000) - finished + n:012x}-{n:08x}"
        r = list(row)
        r[i_id], r[i_res], r[i_gen] = sid, f"{row[i_res]}-{n}", base_gen + n + 1
        r[i_created] = r[i_updated] = now
        sagas.append(r)
        for e in events:
            e = list(e)
            e[e_id] = sid
            evs.append(e)
    with journal._write() as db:
        db.executemany(f"INSERT INTO saga VALUES({','.join('?' * len(cols))})", sagas)
        db.executemany(f"INSERT INTO event VALUES({','.join('?' * len(ecols))})", evs)
    journal.checkpoint()
    journal.close()


class StartClock:
    """Times a saga's start: from opening the engine to the saga recorded (create_saga
    returned), leaving its drive out (the same steps whatever the journal holds). Wall time
    and this process's CPU time: the wall time holds the commits' fsyncs, whose latency is the
    disk's (and, on a shared host, its neighbours'), the CPU time what grows with the journal."""

    def __init__(self) -> None:
        self.recorded: tuple[float, float] | None = None

    def watch(self, journal: Any) -> None:
        create = journal.create_saga

        def timed_create(*a, **k):
            saga_id = create(*a, **k)
            self.recorded = (time.perf_counter(), time.process_time())
            return saga_id
        journal.create_saga = timed_create


def one_saga(zfs: Any, state: Path, sr: str, guid: str) -> tuple[float, float, float]:
    """(start wall, start CPU, whole wall) seconds of one Volume.create saga over the journal
    in `state`."""
    from zfsaga.sagas import volume_create
    from zfsaga.sagas.runner import open_engine
    from zfsaga.steps import srs

    clock = StartClock()
    t0, c0 = time.perf_counter(), time.process_time()
    engine = open_engine(zfs, state, lock_wait=5)
    clock.watch(engine.journal)
    outcome = volume_create.start(engine, srs.sr_key(guid), sr, guid, "disk", "", MiB, False)
    whole = time.perf_counter() - t0
    engine.journal.close()
    assert outcome.status == "succeeded", outcome
    return clock.recorded[0] - t0, clock.recorded[1] - c0, whole


#: The journals a saga starts on: empty, full of finished sagas, and emptied by gc.
WHICH = ("empty", "full", "forgot")


def bench_journal(args: argparse.Namespace) -> None:
    from zfsaga.state.journal import Journal
    from zfsaga.steps import srs
    from zfsaga.steps.zfs.model import ModelZfs

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        row, events = template_saga(tmp)
        start = time.perf_counter()
        fill_journal(tmp / "full" / "journal.db", args.finished, row, events)
        size = os.path.getsize(tmp / "full" / "journal.db")
        fill_journal(tmp / "forgot" / "journal.db", args.finished, row, events, age_s=10.0)
        forgot = Journal(tmp / "forgot" / "journal.db")
        forgot.gc(0.0)
        forgot.checkpoint()
        forgot.close()
        print(f"\nA saga's start: journal with {args.finished:,} finished sagas "
              f"({size / MiB:.0f} MiB, filled in {time.perf_counter() - start:.0f} s; `full`), "
              f"and one whose {args.finished:,} were forgotten by gc (`forgot`), against an "
              f"empty one; Volume.create on the in-memory model, median of {args.repeat} "
              f"(interleaved)")
        zfs = ModelZfs(pools=(POOL,))
        srs_ = {}
        for which in WHICH:
            sr = f"{POOL}/{which}"
            zfs.create_filesystem(sr)
            srs_[which] = (sr, srs.adopt(zfs, sr).guid)
            (tmp / which).mkdir(exist_ok=True)
        # The full journal's generation is ahead of its SR's witness (0): as it would be.
        for which in WHICH:
            one_saga(zfs, tmp / which, *srs_[which])  # warm: stamps, first check of pages
        times: dict[str, list[tuple[float, float, float]]] = {w: [] for w in WHICH}
        for _ in range(args.repeat):
            for which in WHICH:
                times[which].append(one_saga(zfs, tmp / which, *srs_[which]))
        med = {w: [statistics.median(t[i] for t in ts) for i in range(3)]
               for w, ts in times.items()}
        print(f"{'journal':>8} {'start ms':>9} {'ratio':>6} {'start CPU ms':>12} {'ratio':>6} "
              f"{'saga ms':>8} {'ratio':>6}")
        for w in WHICH:
            print(f"{w:>8} " + " ".join(
                f"{1e3 * med[w][i]:>{width}.2f} {med[w][i] / med['empty'][i]:>6.2f}"
                for i, width in ((0, 9), (1, 12), (2, 8))))
        print("(target: a start at most 1.10x the empty journal's)")
        if args.profile:
            print(profile_top(lambda: one_saga(zfs, tmp / "full", *srs_["full"])))

        print(f"\nThe journal file over rounds of {args.round:,} sagas, each round followed "
              f"by gc (everything finished is forgotten)")
        print(f"{'round':>6} {'sagas':>8} {'before gc KiB':>13} {'after gc KiB':>12}")
        path = tmp / "rounds" / "journal.db"
        Journal(path).close()
        for n in range(1, args.rounds + 1):
            fill_journal(path, args.round, row, events, age_s=10.0)
            before = os.path.getsize(path)
            journal = Journal(path)
            journal.gc(0.0)
            journal.checkpoint()
            journal.close()
            print(f"{n:>6} {n * args.round:>8,} {before / 1024:>13.0f} "
                  f"{os.path.getsize(path) / 1024:>12.0f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="all", choices=("ls", "journal", "all"))
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--real-sizes", default="100,1000")
    parser.add_argument("--finished", type=int, default=100_000)
    parser.add_argument("--round", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries")
    args = parser.parse_args()
    if args.what in ("journal", "all"):
        bench_journal(args)
    if args.what in ("ls", "all"):
        bench_ls(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
