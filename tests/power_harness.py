"""Power-loss harness: cut the power at every flush a saga causes, recover as a rebooted host
would, and check that nothing was lost (issue 9, part 1). Runs in the real-ZFS guest, as root.

For one scenario of the crash harness's catalog (tests/saga_scenarios.py):

1. Record. A pool of its own on a device-mapper linear map over a spare disk; the scenario's
   fixture built on it, every volume filled with data of its own (written before any
   snapshot, so each snapshot has a checksum of its own); the journal's state filesystem on
   the same pool, where zfsaga keeps it. Export; copy the disk (the replay's starting image);
   swap the linear map for a log-writes map over the same disk; import; mark `start`; run
   the saga as the plugin does (journal in the pool's state filesystem); mark `end`; export.
2. Replay. Read the log; apply its writes in order onto the copy; at each FLUSH between the
   marks, import a throwaway dm-snapshot of the copy as the pool (as a host boots: import,
   which mounts the state filesystem and so replays its ZIL), recover the SR's journal (what
   its first call does), and check the crash harness's invariants plus the data: every
   volume and snapshot reads back with the checksum it had in the state the SR is in.

Disks (the guest harness attaches them): ZFSAGA_FAULT_DISKS="POOL_DISK LOG_DISK COPY_DISK".
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tests.crash_harness import Case, Harness, Scenario, devices_in, ends, sr_state
from tests.dmlog import Log, Replayer, iter_marks, read_log
from zfsaga.sagas.engine import Engine
from zfsaga.state.journal import Journal
from zfsaga.steps import srs
from zfsaga.steps.base import guid_of
from zfsaga.steps.zfs.interface import Zfs, ZfsHooks

POOL = "zfsagapl"
MOUNT = f"/run/{POOL}"
LINEAR, LOGW, SNAP = "zfsaga-pl-linear", "zfsaga-pl-logw", "zfsaga-pl-snap"
COW_FILE = "/tmp/zfsaga-pl-cow.img"
COW_SIZE = 256 << 20
CHUNK = 1 << 20


class HarnessError(RuntimeError):
    """The harness itself could not do its part (a device, an import): not a zfsaga finding."""


def run(*argv: str, check: bool = True, timeout: float = 120) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise HarnessError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def fault_disks() -> tuple[str, str, str]:
    disks = os.environ.get("ZFSAGA_FAULT_DISKS", "/dev/vdb /dev/vdc /dev/vdd").split()
    if len(disks) != 3 or not all(os.path.exists(d) for d in disks):
        raise HarnessError(f"the power-loss harness needs three spare disks, got {disks}: "
                           "run it in the guest (python -m zfsaga.guest)")
    return disks[0], disks[1], disks[2]


def sectors(dev: str) -> int:
    return int(run("blockdev", "--getsz", dev))


# -- device-mapper -------------------------------------------------------------------------------
def dm_create(name: str, table: str) -> str:
    run("dmsetup", "create", name, "--table", table)
    run("dmsetup", "mknodes", name)  # udev in the guest's chroot does not make /dev/mapper links
    return f"/dev/mapper/{name}"


def dm_remove(name: str) -> None:
    for _ in range(50):
        if run("dmsetup", "remove", name, check=False) == "" and not dm_exists(name):
            return
        run("udevadm", "settle", check=False)
        time.sleep(0.2)
    raise HarnessError(f"dmsetup remove {name}: still busy")


def dm_exists(name: str) -> bool:
    return subprocess.run(["dmsetup", "info", name], capture_output=True).returncode == 0


def dm_mark(name: str, mark: str) -> None:
    run("dmsetup", "message", name, "0", "mark", mark)


# -- the pool --------------------------------------------------------------------------------------
def pool_import(dev: str) -> None:
    run("zpool", "import", "-o", "cachefile=none", "-d", dev, POOL)


def pool_export() -> None:
    for attempt in range(30):
        run("udevadm", "settle", check=False)
        proc = subprocess.run(["zpool", "export", POOL], capture_output=True, text=True)
        if proc.returncode == 0:
            return
        time.sleep(0.3)
    raise HarnessError(f"zpool export {POOL}: {proc.stderr.strip()}")


def pool_create(dev: str) -> None:
    run("zpool", "create", "-f", "-o", "cachefile=none", "-m", MOUNT, "-O", "snapdev=visible",
        POOL, dev)


# -- data ----------------------------------------------------------------------------------------
def device(name: str, timeout: float = 120) -> str:
    # udev is slow in an emulated guest that shares its host with another (a soak beside CI
    # once waited past 30 s): the wait is long, and only a missing device ever reaches it.
    # A loaded guest has also lost the add event of a zvol once (a clone replay waited 120 s
    # for a device ZFS had made): past a quarter of the wait, ask udev to replay the events.
    path = f"/dev/zvol/{name}"
    start = time.monotonic()
    retriggered = False
    while not os.path.exists(path):
        waited = time.monotonic() - start
        if waited > timeout:
            raise HarnessError(f"{path} did not appear within {timeout:.0f}s")
        if waited > timeout / 4 and not retriggered:
            run("udevadm", "trigger", "--action=add", "--subsystem-match=block", check=False)
            retriggered = True
        run("udevadm", "settle", check=False)
        time.sleep(0.1)
    return path


class Marker(ZfsHooks):
    """While a saga runs: a mark in the log just before and just after each ZFS mutation, so
    the flush points inside one (where ZFS's own transactions were cut) can be told apart."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def before(self, op: str, name: str, mutating: bool) -> None:
        super().before(op, name, mutating)
        if mutating:
            self.n += 1
            dm_mark(LOGW, f"in:{op}:{self.n}")

    def after(self, op: str, name: str, mutating: bool) -> None:
        if mutating:
            dm_mark(LOGW, f"out:{op}:{self.n}")

    def failed(self, op: str, name: str, mutating: bool, error: Exception) -> None:
        self.after(op, name, mutating)


class DataWriter(ZfsHooks):
    """While a fixture is built: fill each new volume with data of its own (a clone gets its
    own too, so it differs from its origin), before any snapshot of it is taken. The data
    depends on the name below `root` only, so two copies of a fixture hold the same."""

    def __init__(self, root: str = "") -> None:
        super().__init__()
        self.root = root

    def after(self, op: str, name: str, mutating: bool) -> None:
        super().after(op, name, mutating)
        if op in ("create_zvol", "clone") and "@" not in name:
            fill(name, name[len(self.root):] if name.startswith(self.root) else name)


def fill(name: str, seed_name: str) -> None:
    seed = hashlib.sha256(seed_name.encode()).digest()
    block = (seed * (CHUNK // len(seed) + 1))[:CHUNK]
    fd = os.open(device(name), os.O_WRONLY)
    try:
        os.pwrite(fd, block, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def checksum(name: str) -> str:
    digest = hashlib.sha256()
    with open(device(name), "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def data_sums(state: dict[str, tuple], sr: str) -> dict[str, str]:
    """Checksums of every volume and snapshot in an SR state (sr_state's keys: relative;
    value[4] is defer_destroy: such a snapshot has no device, and its data lives on in the
    clone that keeps it)."""
    return {rel: checksum(sr + rel) for rel, value in state.items()
            if rel.startswith(("/", "@")) and value[0] in ("volume", "snapshot")
            and value[4] != "on"}


# -- the recording -----------------------------------------------------------------------------
@dataclass
class Segment:
    """One saga of the recording: its fixture, states and checksums, and its flush points."""

    scenario: Scenario
    fixture: dict[str, str]
    before: dict[str, tuple]
    after: dict[str, tuple] = field(default_factory=dict)
    sums_before: dict[str, str] = field(default_factory=dict)
    sums_after: dict[str, str] = field(default_factory=dict)
    points: list[int] = field(default_factory=list)
    #: The flush points inside each ZFS mutation of the saga, by the mutation ("clone:3").
    inside: dict[str, list[int]] = field(default_factory=dict)
    #: Where each ZFS mutation of the saga had returned: the log index of its `out:` mark.
    returned: dict[str, int] = field(default_factory=dict)


@dataclass
class Recording:
    log: Log
    segments: list[Segment]
    seconds: float = 0.0


@dataclass
class PowerReport:
    scenario: str
    flush_points: int
    cases: list[Case] = field(default_factory=list)

    @property
    def failures(self) -> list[Case]:
        return [c for c in self.cases if c.problems]


def state_dir(zfs: Zfs, sr: str) -> Path:
    """Where the plugin keeps this SR's journal: by the dataset's guid (an SR.create cut off
    before its mark keeps it there too), on the pool's state filesystem."""
    from zfsaga.location import state_base

    return state_base(zfs, sr, create=True) / srs.sr_key(guid_of(zfs, sr) or "none")


class PowerHarness:
    """Records the sagas of several scenarios, one after another, in one log (one pool, one
    copy of its disk), then replays the flush points inside each saga."""

    def __init__(self, zfs: Zfs, *, synchronous: str = "FULL",
                 defect: str | None = None) -> None:
        self.zfs = zfs
        self.synchronous = synchronous
        self.defect = defect
        self.pool_disk, self.log_disk, self.copy_disk = fault_disks()
        self.size = sectors(self.pool_disk)
        run("modprobe", "-a", "dm-log-writes", "dm-snapshot", "loop")
        #: Whether the copy disk holds what the pool disk holds (true of a fresh guest's blank
        #: disks, and after a replay ran a log to its end).
        self.copy_matches = True

    # -- recording ---------------------------------------------------------------------------
    def _start_log(self) -> str:
        """Nothing of an earlier run left; the copy made equal to the disk; the log-writes map
        over the disk, whose device it returns: every write from here on is logged."""
        self._clear()
        if not self.copy_matches:
            run("dd", f"if={self.pool_disk}", f"of={self.copy_disk}", "bs=4M", "conv=fsync",
                "status=none", timeout=900)
        self.copy_matches = False  # until a replay has run this log to its end
        return dm_create(LOGW, f"0 {self.size} log-writes {self.pool_disk} {self.log_disk}")

    def record(self, scenarios: list[Scenario]) -> Recording:
        """The log starts on a disk the copy equals (both blank in a fresh guest; after a
        replay, which runs to the log's end, both hold the same pool): the pool is created,
        the fixtures built and the sagas run under it, one pair of marks around each saga."""
        started = time.monotonic()
        dev = self._start_log()
        pool_create(dev)
        segments = []
        hooks = self.zfs.hooks
        try:
            for i, scenario in enumerate(scenarios):
                root = f"{POOL}/s{i}"
                self.zfs.hooks = DataWriter(root)
                self.zfs.create_filesystem(root)
                fixture = scenario.build(self.zfs, root)
                state_dir(self.zfs, fixture["sr"]).mkdir(parents=True, exist_ok=True)
                seg = Segment(scenario, fixture, sr_state(self.zfs, fixture["sr"]))
                seg.sums_before = data_sums(seg.before, fixture["sr"])
                segments.append(seg)
                # Only the SR whose saga runs has devices: an import of a pool with every
                # fixture's volumes and snapshots would spend most of a replay point in udev.
                run("zfs", "set", "volmode=none", root)
        finally:
            self.zfs.hooks = hooks
        for i, seg in enumerate(segments):
            sr = seg.fixture["sr"]
            run("zfs", "set", "volmode=default", f"{POOL}/s{i}")
            state = state_dir(self.zfs, sr)
            run("sync")  # the fixture is on disk before the saga starts, as on a host
            self._run_marked(i, seg, state)
            seg.after = sr_state(self.zfs, sr)
            seg.sums_after = data_sums(seg.after, sr)
            run("zfs", "set", "volmode=none", f"{POOL}/s{i}")
        pool_export()
        dm_remove(LOGW)
        return Recording(self.read_points(segments), segments, time.monotonic() - started)

    def _run_marked(self, i: int, seg: Segment, state: Path) -> None:
        """Saga `i` run as the plugin runs it (its journal in `state`, at this run's synchronous
        mode), between its start and end marks, each ZFS mutation marked too."""
        dm_mark(LOGW, f"start-{i}")
        journal = Journal(state / "journal.db")
        if self.synchronous != "FULL":
            journal._db.execute(f"PRAGMA synchronous={self.synchronous}")
        hooks, self.zfs.hooks = self.zfs.hooks, Marker()
        try:
            seg.scenario.start(Engine(self.zfs, journal, state), seg.fixture)
        finally:
            self.zfs.hooks = hooks
            journal.close()
        dm_mark(LOGW, f"end-{i}")

    def read_points(self, segments: list[Segment]) -> Log:
        """The log, once its device is unmapped; each saga's flush points found between its
        marks, and those inside each of its ZFS mutations."""
        with open(self.log_disk, "rb") as f:
            log = read_log(f)
        for i, seg in enumerate(segments):
            begin, end = log.mark(f"start-{i}"), log.mark(f"end-{i}")
            seg.points = log.flush_points(begin, end)
            opened: dict[str, int] = {}
            for index, mark in iter_marks(log):
                if begin < index < end and mark.startswith("in:"):
                    opened[mark[3:]] = index
                elif begin < index < end and mark.startswith("out:"):
                    op = mark[4:]
                    seg.inside[op] = log.flush_points(opened.pop(op), index)
                    seg.returned[op] = index
        return log

    # -- replay ------------------------------------------------------------------------------
    def replay(self, rec: Recording, pick: Callable[[Segment], list[int]] | None = None,
               teeth: tuple[str, Callable[[Segment], list[int]]] | None = None,
               shown: list[Case] | None = None,
               progress: Callable[[Segment, Case], None] | None = None) -> list[PowerReport]:
        """Replay the flush points `pick` chooses in each saga (every one by default), in log
        order, checking each: one report per saga. With `teeth` (defects, comma-separated, and
        the points of a saga to try them at), those points are recovered again by a zfsaga
        with each defect, their cases appended to `shown`. `progress` is told of each case as
        it is checked (a long run's partial figures)."""
        shown = shown if shown is not None else []
        reports = [PowerReport(seg.scenario.kind, len(seg.points)) for seg in rec.segments]
        chosen = sorted((point, i) for i, seg in enumerate(rec.segments)
                        for point in (pick(seg) if pick else seg.points))
        run("truncate", "-s", str(COW_SIZE), COW_FILE)
        loop = run("losetup", "--find", "--show", COW_FILE).strip()
        try:
            with open(self.log_disk, "rb") as log_dev, \
                    Replayer(rec.log, log_dev, self.copy_disk) as replayer:
                for point, i in chosen:
                    replayer.advance(point)
                    seg = rec.segments[i]
                    reports[i].cases.append(self._check_point(seg, point, loop))
                    if progress is not None:
                        progress(seg, reports[i].cases[-1])
                    if teeth is not None and point in teeth[1](seg):
                        # The same cut once more, recovered by a zfsaga with a defect: each
                        # check runs on a fresh snapshot of the replayed disk.
                        for name in teeth[0].split(","):
                            self.defect, kept = name, self.defect
                            try:
                                shown.append(self._check_point(seg, point, loop))
                                if progress is not None:
                                    progress(seg, shown[-1])
                            finally:
                                self.defect = kept
                replayer.advance(len(rec.log.entries))  # the copy is the disk again
                self.copy_matches = True
        finally:
            run("losetup", "-d", loop, check=False)
            os.unlink(COW_FILE)
        return reports

    def _check_point(self, seg: Segment, point: int, loop: str) -> Case:
        with defect(self.defect):
            return self._check_point_as_is(seg, point, loop)

    def _check_point_as_is(self, seg: Segment, point: int, loop: str) -> Case:
        case = Case(point, "power-cut" if self.defect is None else self.defect, None)
        dev = dm_create(SNAP, f"0 {self.size} snapshot {self.copy_disk} {loop} N 8")
        imported = False
        try:
            if self.defect == "unmounted-journal":
                run("zpool", "import", "-N", "-o", "cachefile=none", "-d", dev, POOL)
            else:
                pool_import(dev)
            imported = True
            case.problems, case.status = self._recover_and_check(seg)
        except HarnessError:
            raise
        except Exception as exc:  # a zfsaga failure at this point is a finding, not a stop
            case.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            if imported:
                pool_export()
            dm_remove(SNAP)
        return case

    def _recover_and_check(self, seg: Segment) -> tuple[list[str], str]:
        state = None
        if self.defect == "unmounted-journal":
            # The defect: the journal opened where the state filesystem would be mounted,
            # without mounting it (an import with -N, as some boots do).
            sr = seg.fixture["sr"]
            state = Path(MOUNT, srs.STATE_DATASET, srs.sr_key(guid_of(self.zfs, sr) or "none"))
        return recover_and_check(self.zfs, seg, state)

    def _clear(self) -> None:
        """Leftovers of an earlier recording (or an aborted run): nothing of ours imported or
        mapped."""
        if subprocess.run(["zpool", "list", POOL], capture_output=True).returncode == 0:
            pool_export()
        for name in (SNAP, LOGW, LINEAR):
            if dm_exists(name):
                dm_remove(name)


def recover_and_check(zfs: Zfs, seg: Segment, state: Path | None = None,
                      ) -> tuple[list[str], str]:
    """What the SR's first call after the reboot does (heal its orphaned sagas), then the
    crash harness's invariants and the data's checksums in the state the SR is in."""
    sr = seg.fixture["sr"]
    state = state or state_dir(zfs, sr)
    journal = Journal(state / "journal.db")
    try:
        Engine(zfs, journal, state).recover()
    finally:
        journal.close()
    checker = Harness(lambda: (zfs, ""), "power")
    checker.before, checker.after = seg.before, seg.after
    # A pool saga's state includes what is left on its devices, not imported.
    problems, status = checker.check(zfs, sr, state, devices_in(seg.fixture))
    want = seg.sums_after if status == "succeeded" else seg.sums_before
    if status in ("succeeded", "compensated", "never-started"):
        problems += compare_sums(data_sums(sr_state(zfs, sr), sr), want)
    return problems, status


DEFECTS = ("untagged-births", "unmounted-journal", "unimported-pools", "blind-destroy")


class defect:
    """A deliberate defect of zfsaga for one check, to show the replay catches it:
    untagged-births: a dataset left half made by a power cut (made, never tagged) is never
    taken as the step's own, as before the replay found it; unmounted-journal: recovery opens
    the journal without mounting the state filesystem (handled in _recover_and_check);
    unimported-pools: a pool a power cut left on its devices, not imported at boot, is never
    looked for (as before the pool sagas' replay found it: tests/pool_power.py);
    blind-destroy: an interrupted pool destroy is never found done (its probe trusts the
    journal's "started", not ZFS: it destroys again what is gone). Joined by "+", several at
    once."""

    def __init__(self, name: str | None) -> None:
        self.names = (name or "").split("+")
        self.saved: list[tuple[object, str, object]] = []

    def __enter__(self) -> None:
        if "untagged-births" in self.names:
            from zfsaga.compensations import owned as comp
            from zfsaga.compensations import pools as comp_pools
            from zfsaga.steps import base, pools

            for module in (base, comp, comp_pools, pools):
                self.saved.append((module, "half_born", module.half_born))
                module.half_born = lambda step, ctx, props: False
        if "blind-destroy" in self.names:
            from zfsaga.steps import pools

            probe = pools.DestroyPool.probe
            self.saved.append((pools.DestroyPool, "probe", probe))
            pools.DestroyPool.probe = lambda step, ctx: (  # type: ignore[method-assign]
                "absent" if ctx.zfs.pool_guid(step.arg(ctx, "pool")) is None
                else probe(step, ctx))
        if "unimported-pools" in self.names:
            from zfsaga.steps import pools

            self.saved.append((pools, "import_left_behind", pools.import_left_behind))
            pools.import_left_behind = lambda step, ctx: False

    def __exit__(self, *exc) -> None:
        for module, attr, fn in self.saved:
            setattr(module, attr, fn)


def compare_sums(got: dict[str, str], want: dict[str, str]) -> list[str]:
    problems = [f"{name}: data differs from before the cut" for name in sorted(want)
                if name in got and got[name] != want[name]]
    missing = sorted(set(want) - set(got))
    if missing:
        problems.append(f"volumes or snapshots gone: {missing}")
    return problems


def sample(points: list[int], n: int) -> list[int]:
    """n flush points spread evenly inside the saga (its first and last flush, where nothing
    or everything has happened, only when n covers them all): deterministic."""
    if n >= len(points):
        return list(points)
    return sorted({points[round((i + 1) * (len(points) - 1) / (n + 1))] for i in range(n)})


def print_case(seg: Segment, case: Case) -> None:
    print(f"  {seg.scenario.kind} entry {case.crash_at} [{case.mode}]: "
          f"{case.status or 'error'}" + (f", VIOLATION {case.problems}" if case.problems else ""),
          flush=True)


MAKINGS = ("create_zvol", "clone", "create_pool")


def inside_makings(seg: Segment) -> list[int]:
    """The flush points inside the saga's makings of a dataset or a pool (where ZFS splits
    the making from the properties it was made with)."""
    return sorted(p for op, points in seg.inside.items() if op.split(":")[0] in MAKINGS
                  for p in points)


def summary(reports: list[PowerReport]) -> str:
    replayed = sum(len(r.cases) for r in reports)
    total = sum(r.flush_points for r in reports)
    failures = sum(len(r.failures) for r in reports)
    per = ", ".join(f"{r.scenario} {len(r.cases)}/{r.flush_points}" for r in reports)
    return (f"power-loss replay [real ZFS]: {replayed} crash states replayed of {total} flush "
            f"points ({per}); violations: {failures}")


def main(argv: list[str] | None = None) -> int:
    """`make powerloss`: every flush point of every scenario (or a sample), counts printed:
    the SR sagas on one pool, then the pool sagas on the host's slices (tests/pool_power.py),
    each group with its own figures line."""
    import argparse

    from tests.pool_power import PoolPowerHarness, is_pool_scenario
    from tests.saga_scenarios import SCENARIOS
    from zfsaga.steps.zfs.real import RealZfs

    parser = argparse.ArgumentParser(prog="python -m tests.power_harness")
    parser.add_argument("--sample", type=int, default=0, help="flush points per scenario "
                        "(0: every one)")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "OFF"],
                        help="the journal's SQLite synchronous mode for this run")
    parser.add_argument("--defect", choices=DEFECTS, default=None)
    parser.add_argument("--only", default="", help="comma-separated saga kinds")
    parser.add_argument("--teeth", default="", help="comma-separated defects: every flush "
                        "point inside a dataset's or a pool's making recovered once more with "
                        "each, to show which cuts catch it")
    args = parser.parse_args(argv)
    kinds = [k for k in SCENARIOS if not args.only or k in args.only.split(",")]
    scenarios = [sc for kind in kinds for sc in SCENARIOS[kind]]
    groups = [(PowerHarness, "", [sc for sc in scenarios if not is_pool_scenario(sc)]),
              (PoolPowerHarness, " [pool sagas, host journal on ext4]",
               [sc for sc in scenarios if is_pool_scenario(sc)])]
    failed, copy_matches = False, True
    for cls, label, group in groups:
        if not group:
            continue
        harness = cls(RealZfs(), synchronous=args.synchronous, defect=args.defect)
        harness.copy_matches = copy_matches  # the disks are shared by the groups
        reports = run_group(harness, group, args.sample, args.teeth)
        failed |= any(r.failures for r in reports)
        print(f"{summary(reports)}{label} [synchronous={args.synchronous}"
              + (f", defect {args.defect}" if args.defect else "") + "]", flush=True)
        copy_matches = harness.copy_matches
    return 1 if failed else 0


def run_group(harness: PowerHarness, scenarios: list[Scenario], n: int,
              teeth: str = "") -> list[PowerReport]:
    """Record the scenarios' sagas in one log, replay every flush point (or `n` of each
    saga's), print each saga's figures (and, with `teeth`, what each defect did at the points
    inside a making)."""
    rec = harness.record(scenarios)
    print(f"recorded {len(scenarios)} sagas: {len(rec.log.entries)} log entries, "
          f"{rec.log.writes()} writes, {len(rec.log.flush_points())} flushes "
          f"({rec.seconds:.0f}s)", flush=True)
    started = time.monotonic()
    shown: list[Case] = []
    reports = harness.replay(rec, (lambda seg: sample(seg.points, n)) if n else None,
                             teeth=(teeth, inside_makings) if teeth else None, shown=shown,
                             progress=print_case)
    for report in reports:
        print(f"{report.scenario}: {report.flush_points} flush points in the saga, "
              f"{len(report.cases)} replayed, {len(report.failures)} violations; "
              f"ends: {ends(report.cases)}", flush=True)
        for case in report.failures[:5]:
            print(f"  entry {case.crash_at} ({case.status}): {case.problems}", flush=True)
    for name in filter(None, teeth.split(",")):
        tried = [c for c in shown if c.mode == name]
        caught = [c.crash_at for c in tried if c.problems]
        print(f"teeth: the defect {name!r} recovered {len(tried)} cut(s) inside a making, "
              f"caught at {len(caught)}: entries {caught}", flush=True)
    print(f"replayed in {time.monotonic() - started:.0f}s", flush=True)
    return reports


if __name__ == "__main__":
    raise SystemExit(main())
