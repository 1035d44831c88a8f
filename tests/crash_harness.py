"""Crash-point enumeration for a saga. For every boundary k of a clean run: run the saga
crashing at k, then recover (by resume, and separately by abort), also crashing the recovery at
every boundary m it reaches, then recover again, and check the invariants:

- the saga is terminal (succeeded or compensated);
- the SR is exactly the before-state (compensated) or the after-state (succeeded): names,
  types, identities, origins, holds, tags; untagged datasets untouched;
- nothing tagged by a compensated saga is left;
- the journal is well-formed;
- one more recovery makes zero ZFS calls.

Crashes are SimulatedCrash raised at the boundary (in-process kill -9: nothing in zfsaga
catches a BaseException; the lock's file descriptor is closed as the kernel would close it).
"""
from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from tests.conftest import POOL
from zfsaga.faults import FaultHooks, Faults, SimulatedCrash
from zfsaga.sagas import volume_revert as revert
from zfsaga.sagas.engine import UNWITNESSED, Engine
from zfsaga.state.journal import Journal
from zfsaga.state.lifecycle import IllegalMove
from zfsaga.steps import meta, srs
from zfsaga.steps.base import OWNER, RETIRED
from zfsaga.steps.index import INDEX_PREFIX
from zfsaga.steps.meta import METADATA_PREFIX
from zfsaga.steps.zfs.model import ModelZfs
from zfsaga.steps.zfs.interface import Zfs, ZfsHooks

MiB = 1 << 20
BORN = "test:born"
TOKEN = "t0"
META = "test:meta"
STATE_PROPS = ["type", "origin", "userrefs", "defer_destroy", "volsize", "refreservation", BORN,
               META, OWNER, RETIRED, srs.SR_MARK, meta.NAME, meta.DESCRIPTION, meta.SR_UUID,
               meta.PROVISIONING, meta.KEY]


def build_fixture(zfs: Zfs, root: str) -> dict[str, str]:
    """An SR with a thick VDI carrying metadata that has two snapshots, a VM cloned from the
    older one, and a dataset zfsaga never made (it must come out untouched)."""
    sr = f"{root}/sr"
    zfs.create_filesystem(sr, {BORN: "sr"})
    srs.adopt(zfs, sr)
    vdi = f"{sr}/vdi"
    zfs.create_zvol(vdi, 4 * MiB, sparse=False, props={BORN: "vdi", META: "vdi metadata"})
    zfs.snapshot([f"{vdi}@s1"], {BORN: "s1"})
    zfs.snapshot([f"{vdi}@s2"], {BORN: "s2"})
    zfs.clone(f"{vdi}@s1", f"{sr}/vm-clone", {BORN: "vm-clone"})
    zfs.create_zvol(f"{sr}/other", 2 * MiB, props={BORN: "other"})
    return {"sr": sr, "vdi": vdi, "snapshot": f"{vdi}@s1"}


def tree(zfs: Zfs, root: str, props: list[str]) -> dict:
    """`list_tree`, empty for a root that is not there (a pool saga's pool may not be)."""
    return zfs.list_tree(root, props) if zfs.exists(root) else {}


def devices_in(fixture: dict[str, str]) -> list[str]:
    """The devices a pool scenario's fixture was built on (none for an SR on a dataset)."""
    return fixture["devices"].split(",") if fixture.get("devices") else []


def sr_state(zfs: Zfs, sr: str, devices: list[str] | None = None) -> dict[str, tuple]:
    """The SR as a comparable value: guids differ between runs, so identity is, for what the
    saga made, its step, else the `born` tag (a replacement inherits its metadata, `born`
    included); the saga's id is blanked. With the `devices` of a pool saga: the pools left on
    them, not imported, are part of it (an exported pool, or one a power cut left there)."""
    left = {} if not devices else {"<on the devices, not imported>": tuple(sorted(
        p["name"] for p in zfs.importable_pools(devices)))}
    if not zfs.exists(sr):
        return {"<absent>": (), **left}  # a pool not made yet, exported or destroyed
    out: dict[str, tuple] = dict(left)
    cut = len(sr)
    for name, p in zfs.list_tree(sr, STATE_PROPS).items():
        owner = p[OWNER].local
        ident = owner.split("/", 1)[1] if owner else p[BORN].local
        origin = p["origin"].value
        out[name[cut:]] = (p["type"].value, ident, origin[cut:] if origin else None,
                           p["userrefs"].value, p["defer_destroy"].value, p["volsize"].value,
                           p["refreservation"].value, p[META].local, owner is not None,
                           p[RETIRED].local is not None,
                           p[srs.SR_MARK].local is not None,  # its value is a guid
                           *(p[prop].local for prop in STATE_PROPS[-5:]))
    # The SR's index of snapshots away from home (steps/index.py) is part of its state, and
    # so are its metadata-only VDIs' records and every bookmark (Volume.data_destroy).
    marks = {mark: got for name in zfs.list_tree(sr, ["type"]) if "@" not in name
             for mark, got in zfs.bookmarks(name).items()}
    out["<index>"] = tuple(sorted(
        (k, _comparable_record(v, sr, marks) if k.startswith(METADATA_PREFIX) else v)
        for k, v in zfs.user_props(sr).items() if k.startswith((INDEX_PREFIX, METADATA_PREFIX))))
    out["<bookmarks>"] = tuple(sorted(mark[cut:] for mark in marks))
    return out


def _comparable_record(stored: str, sr: str, marks: dict[str, dict[str, str]]) -> str:
    """A metadata-only VDI's record (steps/metadata_only.py) as the same value in every run:
    its bookmark hint relative to the SR (each case's SR has a root of its own), and its guid
    (a new one each time real ZFS builds the fixture) as the bookmark that carries it, so a
    record that names no bookmark of the SR still differs."""
    record = json.loads(stored)
    hint = str(record.get("bookmark", ""))
    record["bookmark"] = hint[len(sr):] if hint.startswith(sr + "/") else hint
    carriers = sorted(mark[len(sr):] for mark, got in marks.items()
                      if got.get("guid") == str(record.get("guid")))
    record["guid"] = carriers or "<the guid of no bookmark of the SR>"
    return json.dumps(record, sort_keys=True)


@dataclass
class Scenario:
    """One saga of the catalog under test: a fixture SR built on an empty root, and the call
    that starts the saga on it (deterministic: the same names in every run)."""

    kind: str
    build: Callable[[Zfs, str], dict[str, str]]
    start: Callable[[Engine, dict[str, str]], object]
    #: What a reader must see at every crash point, before recovery and after it: problems.
    view: Callable[[Zfs, dict[str, str]], list[str]] | None = None


REVERT = Scenario("volume.revert", build_fixture,
                  lambda engine, fx: revert.start(engine, fx["sr"], fx["vdi"], fx["snapshot"],
                                                  TOKEN))


@dataclass
class Case:
    crash_at: int
    mode: str
    recovery_crash_at: int | None
    problems: list[str] = field(default_factory=list)
    status: str = ""


@dataclass
class Report:
    backend: str
    cases: list[Case] = field(default_factory=list)
    boundaries: int = 0
    points: int = 0  # first-level crash points enumerated (all boundaries, or a chosen kind)

    @property
    def failures(self) -> list[Case]:
        return [c for c in self.cases if c.problems]


class Harness:
    """Runs the revert saga under crashes on backends made by `new_backend()`, which returns
    (zfs, root) on a fresh, empty root."""

    def __init__(self, new_backend: Callable[[], tuple[Zfs, str]], name: str,
                 cleanup: Callable[[Zfs, str], None] | None = None,
                 journal_parent: str | None = None, scenario: Scenario = REVERT) -> None:
        self.scenario = scenario
        self.new_backend = new_backend
        self.journal_parent = journal_parent
        self.name = name
        self.cleanup = cleanup or (lambda zfs, root: None)
        self.before: dict[str, tuple] | None = None
        self.after: dict[str, tuple] | None = None

    # -- one process's worth of work -----------------------------------------------------------
    @staticmethod
    def _engine(zfs: Zfs, state_dir: Path, crash_at: int | None) -> tuple[Engine, Faults]:
        faults = Faults(crash_at=crash_at, mode="raise")
        zfs.hooks = FaultHooks(faults)
        journal = Journal(state_dir / "journal.db", boundary=faults.boundary)
        return Engine(zfs, journal, state_dir, boundary=faults.boundary, lock_wait=5,
                      retry_sleep=lambda s: None), faults

    def _start(self, zfs: Zfs, fixture: dict[str, str], state_dir: Path,
               crash_at: int | None) -> tuple[bool, list[str]]:
        """Run the saga (crashing at boundary crash_at); whether it crashed, and the labels of
        the boundaries it reached."""
        engine, faults = self._engine(zfs, state_dir, crash_at)
        try:
            self.scenario.start(engine, fixture)
            return False, faults.labels
        except SimulatedCrash:
            return True, faults.labels
        finally:
            engine.journal.close()

    def _recover(self, zfs: Zfs, state_dir: Path, mode: str,
                 crash_at: int | None) -> tuple[bool, int]:
        engine, faults = self._engine(zfs, state_dir, crash_at)
        try:
            if mode == "abort":
                for row in engine.journal.active():
                    try:
                        engine.abort(row.id, reason="crash harness: abort")
                    except IllegalMove:
                        engine.resume(row.id, reason="crash harness: past the pivot")
            else:
                engine.recover()
            return False, faults.seen
        except SimulatedCrash:
            return True, faults.seen
        finally:
            engine.journal.close()

    # -- cases ---------------------------------------------------------------------------------
    def reference(self) -> list[str]:
        """A clean run: the before- and after-states, and the labels of its boundaries."""
        zfs, root = self.new_backend()
        try:
            fixture = self.scenario.build(zfs, root)
            self.before = sr_state(zfs, fixture["sr"], devices_in(fixture))
            zfs.guard.armed = True
            with tempfile.TemporaryDirectory(dir=self.journal_parent) as tmp:
                crashed, labels = self._start(zfs, fixture, Path(tmp), None)
            assert not crashed
            self.after = sr_state(zfs, fixture["sr"], devices_in(fixture))
            return labels
        finally:
            zfs.guard.armed = False
            self.cleanup(zfs, root)

    def run_case(self, crash_at: int, mode: str, recovery_crash_at: int | None) -> tuple[Case, int]:
        """One case; returns it and how many boundaries the (first) recovery reached."""
        case = Case(crash_at, mode, recovery_crash_at)
        recovery_seen = 0
        try:
            with self._fresh_world() as (zfs, fixture, state_dir):
                crashed, _ = self._start(zfs, fixture, state_dir, crash_at)
                seen = self._view(zfs, fixture, "after the crash")
                if crashed:
                    crashed2, recovery_seen = self._recover(zfs, state_dir, mode,
                                                            recovery_crash_at)
                    seen += self._view(zfs, fixture, "after a recovery")
                    if crashed2:
                        self._recover(zfs, state_dir, mode, None)
                case.problems, case.status = self.check(zfs, fixture["sr"], state_dir,
                                                        devices_in(fixture))
                case.problems += seen + self._view(zfs, fixture, "at the end")
        except Exception as exc:  # a harness case must report, not stop the enumeration
            case.problems.append(f"{type(exc).__name__}: {exc}")
        return case, recovery_seen

    @contextmanager
    def _fresh_world(self) -> Iterator[tuple[Zfs, dict[str, str], Path]]:
        """A fresh backend holding the scenario's fixture, and an empty journal directory;
        cleaned up after. A backend may be shared between cases: a fault armed for a recovery
        that never reached a boundary must not fire in the next case's set-up."""
        zfs, root = self.new_backend()
        zfs.hooks = ZfsHooks()
        try:
            fixture = self.scenario.build(zfs, root)
            zfs.guard.armed = True  # from here, every change is a saga's (steps/zfs/guard.py)
            with tempfile.TemporaryDirectory(dir=self.journal_parent) as tmp:
                yield zfs, fixture, Path(tmp)
        finally:
            zfs.guard.armed = False
            zfs.hooks = ZfsHooks()
            self.cleanup(zfs, root)

    def run_born_bare(self, crash_at: int, mode: str, how: str) -> Case:
        """Crash just after a create or clone returned, then take away what a power cut
        between ZFS's two transactions would not have kept (steps/base.py, `half_born`):
        `untagged`, every property the dataset was born with; `unreserved`, its reservation
        only (ZFS 2.1.11 keeps a clone it could not reserve); `unimported`, a new pool left on
        its devices but not imported at boot (the host's cache file, which the kernel writes
        after the pool's labels, did not reach its disk: tests/pool_power.py). Recover in
        `mode`, check. On the model only: it edits the model's objects, as no process crash
        can."""
        case = Case(crash_at, f"{mode}, born {how}", None)
        try:
            with self._fresh_world() as (zfs, fixture, state_dir):
                crashed, _ = self._start(zfs, fixture, state_dir, crash_at)
                assert crashed, "no crash at a create or clone"
                newest = max((o for o in zfs._objs.values() if o.type != "snapshot"),
                             key=lambda o: o.createtxg)
                if "untagged" in how:
                    newest.local.clear()
                newest.refreservation = 0
                if "unimported" in how:
                    # The model keeps a pool that is not imported as exported: its labels on
                    # its devices, listed by an import's search, refused by a create.
                    with zfs.guard.saga_action():  # the cut's doing, not a process's
                        zfs.export_pool(newest.name)
                crashed2, _ = self._recover(zfs, state_dir, mode, None)
                assert not crashed2
                case.problems, case.status = self.check(zfs, fixture["sr"], state_dir,
                                                        devices_in(fixture))
        except Exception as exc:
            case.problems.append(f"{type(exc).__name__}: {exc}")
        return case

    def enumerate_born_bare(self) -> Report:
        """`run_born_bare` at every create and clone of the saga, both ways, both modes."""
        report = Report(f"{self.name}, born bare")
        labels = self.reference()
        report.boundaries = len(labels)
        points = [k for k, label in enumerate(labels, 1)
                  if label.startswith(("zfs:after:clone", "zfs:after:create_"))]
        report.points = len(points)
        for k in points:
            # Tagged but unreserved happens to a clone only: ZFS sets a new dataset's special
            # properties (the reservation) before its user properties (the tags), so a power
            # cut cannot leave that, and zfs_ioc_create, unlike zfs_ioc_clone, destroys what
            # it made when a property fails.
            # A new pool can also be left unimported, whole or untagged.
            hows = {"zfs:after:clone": ("untagged", "unreserved"),
                    "zfs:after:create_pool": ("untagged", "unimported", "untagged, unimported"),
                    }.get(labels[k - 1], ("untagged",))
            for how in hows:
                for mode in ("resume", "abort"):
                    report.cases.append(self.run_born_bare(k, mode, how))
        return report

    def run_cut(self, crash_at: int, keep: int | None):
        """Crash at boundary crash_at; with keep None, return how many journal records the
        crash left. Otherwise cut the journal to `keep` records, recover, check: returns
        (case, whether the row was lost, whether every tagged dataset was then reported,
        whether the loss was detected: the SR's witness ahead of the journal, issue 18)."""
        case = Case(crash_at, f"cut:{keep}", None)
        try:
            with self._fresh_world() as (zfs, fixture, state_dir):
                journal = state_dir / "journal.db"
                self._start(zfs, fixture, state_dir, crash_at)
                if keep is None:
                    return journal_records(journal) if journal.exists() else 0
                if not cut_journal(journal, keep):
                    engine, _ = self._engine(zfs, state_dir, None)
                    try:
                        before = sr_state(zfs, fixture["sr"], devices_in(fixture))
                        engine.recover()
                        strangers = (engine.strangers(fixture["sr"])
                                     if zfs.exists(fixture["sr"]) else {})
                        tagged = {n for n, p in tree(zfs, fixture["sr"], [OWNER]).items()
                                  if p[OWNER].local}
                        untouched = sr_state(zfs, fixture["sr"], devices_in(fixture)) == before
                        # Issue 18: a cut that lost the row after the saga set the SR's
                        # witness is a loss the next mutating call refuses (until recover).
                        detected = (zfs.exists(fixture["sr"]) and fixture["sr"] in str(
                            engine.journal_loss(fixture["sr"]) or ""))
                        if tagged and not detected and self.scenario.kind not in UNWITNESSED \
                                and not self.scenario.kind.startswith("pool."):
                            case.problems.append("row lost after ZFS changed, not detected")
                            return case, True, False, False
                    finally:
                        engine.journal.close()
                    return case, True, untouched and tagged == set(strangers), detected
                self._recover(zfs, state_dir, "resume", None)
                case.problems, case.status = self.check(zfs, fixture["sr"], state_dir,
                                                        devices_in(fixture))
        except Exception as exc:
            case.problems.append(f"{type(exc).__name__}: {exc}")
        return case, False, False, False

    def _view(self, zfs: Zfs, fixture: dict[str, str], when: str) -> list[str]:
        if self.scenario.view is None:
            return []
        hooks, zfs.hooks = zfs.hooks, ZfsHooks()  # a reader is another process: no faults
        try:
            return [f"{when}: {p}" for p in self.scenario.view(zfs, fixture)]
        finally:
            zfs.hooks = hooks

    def check(self, zfs: Zfs, sr: str, state_dir: Path,
              devices: list[str] | None = None) -> tuple[list[str], str]:
        problems = []
        journal = Journal(state_dir / "journal.db")
        try:
            rows = journal.list()
            if not rows:  # died before the saga was recorded: nothing may have changed
                if sr_state(zfs, sr, devices) != self.before:
                    problems.append("no saga recorded, yet the SR changed")
                return problems + journal.check_well_formed(), "never-started"
            if len(rows) != 1:
                return [f"expected one saga in the journal, found {len(rows)}"], ""
            row = rows[0]
            if row.status not in ("succeeded", "compensated"):
                problems.append(f"saga ended {row.status}: {row.last_error}")
            end = sr_state(zfs, sr, devices)
            want = self.after if row.status == "succeeded" else self.before
            if end != want:
                diff = sorted(set(end.items()) ^ set(want.items()))
                problems.append(f"SR is not the {'after' if row.status == 'succeeded' else 'before'}"
                                f"-state: {diff}")
            if row.status == "compensated":
                leaked = [n for n, p in tree(zfs, sr, [OWNER]).items()
                          if (p[OWNER].local or "").startswith(row.id)]
                if leaked:
                    problems.append(f"compensated saga left tagged datasets: {leaked}")
            problems += journal.check_well_formed()
            counting = ZfsHooks()
            zfs.hooks = counting
            Engine(zfs, journal, state_dir, lock_wait=5).recover()
            if counting.calls:
                problems.append(f"a second recovery made {counting.calls} ZFS calls")
            return problems, row.status
        finally:
            journal.close()

    def enumerate(self, *, modes: tuple[str, ...] = ("resume", "abort"),
                  first_level: Callable[[str], bool] = lambda label: True,
                  second_level: Callable[[int, int], list[int]] | None = None) -> Report:
        """Every first-level crash point k whose label `first_level` accepts, in each mode; for
        the recovery, every crash point m (or those `second_level(k, M)` picks from the M it
        has)."""
        report = Report(self.name)
        labels = self.reference()
        report.boundaries = len(labels)
        points = [k for k, label in enumerate(labels, 1) if first_level(label)]
        report.points = len(points)
        for mode in modes:
            for k in points:
                case, reached = self.run_case(k, mode, None)
                report.cases.append(case)
                ms = range(1, reached + 1)
                if second_level is not None:
                    ms = second_level(k, reached)
                for m in ms:
                    report.cases.append(self.run_case(k, mode, m)[0])
        return report


def cut_journal(path: Path, keep: int) -> bool:
    """Cut the journal back to its first `keep` records, as a lost `-wal` or a restored backup
    would: later events go, and the saga row returns to what it said at record `keep` (each
    append updated it in the same transaction). keep=0 loses the saga's row itself. Returns
    whether the row survives."""
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    try:
        (saga_id,) = db.execute("SELECT id FROM saga").fetchone()
        db.execute("BEGIN")
        if keep == 0:
            db.execute("DELETE FROM event WHERE saga_id=?", (saga_id,))
            db.execute("DELETE FROM saga WHERE id=?", (saga_id,))
            db.execute("COMMIT")
            return False
        db.execute("DELETE FROM event WHERE saga_id=? AND seq>?", (saga_id, keep))
        kept = db.execute("SELECT type, status, data FROM event WHERE saga_id=? ORDER BY seq",
                          (saga_id,)).fetchall()
        status = [st for _, st, _ in kept if st is not None][-1]
        attempts = sum(t in ("saga_started", "recovery_started") for t, _, _ in kept)
        error = None
        for t, _, data in kept:
            if t in ("step_failed", "comp_failed", "saga_stuck"):
                d = json.loads(data or "{}")
                error = d.get("reason") or d.get("message") or error
        db.execute("UPDATE saga SET status=?, attempts=?, last_error=? WHERE id=?",
                   (status, attempts, error, saga_id))
        db.execute("COMMIT")
        return True
    finally:
        db.close()


def journal_records(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM event").fetchone()[0]
    finally:
        db.close()


@dataclass
class CutReport:
    backend: str
    cases: list[Case] = field(default_factory=list)
    row_lost: int = 0          # cuts that removed the saga's own row: counted apart
    row_lost_reported: int = 0  # ...of which every tagged dataset was reported as unknown
    #: ...of which the SR's witness showed the loss (every cut made after the saga's witness
    #: write): the next mutating call refuses until `zfsaga recover --yes` (issue 18).
    row_lost_detected: int = 0

    @property
    def failures(self) -> list[Case]:
        return [c for c in self.cases if c.problems]


def enumerate_cuts(harness: "Harness", points: list[int] | None = None,
                   keeps: Callable[[int], list[int]] | None = None) -> CutReport:
    """Crash the saga at each boundary k (or those in `points`), cut its journal back to each
    prefix of j records (or those `keeps(n)` picks of the n), recover as the next call would,
    and check. A case whose cut removed the saga's row cannot be checked against the saga:
    there the SR's tagged datasets must all be reported as unknown (and nothing destroyed)."""
    report = CutReport(harness.name)
    labels = harness.reference()
    # len(labels) + 1: no crash at all, the journal of a finished saga cut back.
    for k in points or range(1, len(labels) + 2):
        n = harness.run_cut(k, None)
        if n == 0:
            continue  # died before the saga was recorded: nothing to cut
        for j in (keeps(n) if keeps else range(0, n + 1)):
            case, lost, reported, detected = harness.run_cut(k, j)
            if lost:
                report.row_lost += 1
                report.row_lost_reported += reported
                report.row_lost_detected += detected
                if not reported:
                    report.cases.append(case)
                    case.problems.append("row lost, and the tagged datasets were not reported")
                continue
            report.cases.append(case)
    return report


def ends(cases: list[Case]) -> dict[str, int]:
    """How many cases ended in each saga status."""
    by_status: dict[str, int] = {}
    for case in cases:
        by_status[case.status or "error"] = by_status.get(case.status or "error", 0) + 1
    return by_status


def cut_summary(report: CutReport) -> str:
    return (f"journal-cut harness [{report.backend}]: {len(report.cases)} cases with the saga's "
            f"row surviving the cut, ends: {ends(report.cases)}, "
            f"failures: {len(report.failures)}; "
            f"{report.row_lost} cuts removed the row itself (counted apart), of which "
            f"{report.row_lost_reported} reported every tagged dataset as unknown and "
            f"{report.row_lost_detected} were detected as lost by the SR's witness (refused "
            f"until recover)")


def summary(report: Report) -> str:
    return (f"crash harness [{report.backend}]: {len(report.cases)} crash cases over "
            f"{report.points} of the {report.boundaries} boundaries of a clean run; "
            f"ends: {ends(report.cases)}; "
            f"failures: {len(report.failures)}")


def describe_failures(report: Report, limit: int = 5) -> str:
    return "\n".join(f"  k={c.crash_at} mode={c.mode} m={c.recovery_crash_at}: {c.problems}"
                     for c in report.failures[:limit])


def model_backend() -> tuple[Zfs, str]:
    zfs = ModelZfs(pools=(POOL,))
    root = f"{POOL}/crash"
    zfs.create_filesystem(root)
    return zfs, root

