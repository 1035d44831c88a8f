"""Crash-point enumeration of the revert saga (tests/crash_harness.py): exhaustive on the model
(every crash point, every recovery crash point, resume and abort), first-level plus sampled
second-level on real ZFS in the guest; and proof that the harness can fail."""
from __future__ import annotations

import itertools
import os
import uuid

import pytest

from tests.conftest import POOL, destroy_tree, real_more, real_zfs, summary_line
from tests.crash_harness import (REVERT, Harness, cut_summary, describe_failures, enumerate_cuts,
                                 model_backend, summary)
from zfsaga.compensations.catalog import UNDOS
from zfsaga.steps.promote import PromoteClone
from zfsaga.steps.rename import RenameDataset
from zfsaga.sagas.catalog import kinds as saga_kinds

SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None


_record = summary_line


def test_every_crash_point_on_the_model_recovers(request: pytest.FixtureRequest) -> None:
    report = Harness(model_backend, "model", journal_parent=SHM).enumerate()
    _record(request, summary(report))
    assert report.boundaries >= 40  # 7 steps: the enumeration really walked the whole saga
    assert {c.status for c in report.cases} >= {"succeeded", "compensated"}
    assert not report.failures, describe_failures(report)


@pytest.mark.parametrize("step_type", [PromoteClone, RenameDataset])
def test_a_broken_compensation_is_caught(monkeypatch: pytest.MonkeyPatch,
                                         step_type: type) -> None:
    """Mutation test: with a compensation that does nothing, some crash case must fail."""
    monkeypatch.setitem(UNDOS, step_type, lambda step, ctx: None)
    report = Harness(model_backend, "model (broken)", journal_parent=SHM).enumerate(
        second_level=lambda k, reached: [])
    assert report.failures, "the harness passed a saga whose compensation does nothing"
    assert all(c.problems for c in report.failures)


def real_backend():
    """A fresh real layer and root per case: no fault hooks carried over from the last one."""
    real = real_zfs()
    root = f"{POOL}/c{uuid.uuid4().hex[:10]}"
    real.create_filesystem(root)
    return real, root


@pytest.mark.realzfs
@pytest.mark.timeout(2400)  # ~40 cases at ~10 s each in the emulated guest
def test_crash_points_on_real_zfs(request: pytest.FixtureRequest) -> None:
    # On real ZFS, the points where ZFS's own state differs: just after every ZFS mutation
    # (just before one, ZFS is as it was just after the previous), recovered forward (resume). A journal-only boundary leaves ZFS as the
    # nearest ZFS boundary does (the journal is the same SQLite on both backends), and the
    # model crashes at every one of those, in both modes, and at every pair. For every 4th
    # point the recovery is crashed too, at its middle boundary (a real case costs ~10 s in
    # the emulated guest, and CI has an hour).
    # ZFSAGA_REAL_CRASH_POINTS=all takes every boundary and every pair here too.
    cases = itertools.count(1)

    def sample(k: int, reached: int) -> list[int]:
        return [max(1, reached // 2)] if next(cases) % 3 == 0 and reached else []

    every = os.environ.get("ZFSAGA_REAL_CRASH_POINTS") == "all"
    harness = Harness(real_backend, "real ZFS", cleanup=lambda z, root: destroy_tree(root))
    # Every other ZFS mutation of the revert (hold, rename aside, promote, release): the power
    # loss replay (test_power_loss) recovers real ZFS at its flush points as well.
    after_mutation = itertools.count()
    report = harness.enumerate(
        modes=("resume", "abort") if every else ("resume",),
        first_level=(lambda label: True) if every
        else (lambda label: label.startswith("zfs:after:") and next(after_mutation) % 2 == 0),
        second_level=None if every else sample)
    assert report.points >= 4
    _record(request, summary(report))
    assert not report.failures, describe_failures(report)


@pytest.mark.realzfs
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("kind, n", [("volume.destroy", 1), ("volume.destroy", 3),
                                     ("volume.clone", 1)])
def test_the_sagas_issue_10_names_crash_on_real_zfs(request: pytest.FixtureRequest, kind: str,
                                                    n: int) -> None:
    """Beside the revert: a destroy with dependents (retired, kept), a destroy whose garbage
    collection takes the retired origin, a clone of a writable volume (its hidden base
    snapshot), each crashed just after every ZFS mutation on real ZFS and recovered forward
    (the model takes every boundary of each, in both modes, and every pair)."""
    _every_mutation_crashed_on_real_zfs(request, kind, n)


@pytest.mark.realzfs
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("n", [0, 1])
def test_data_destroy_crashes_on_real_zfs(request: pytest.FixtureRequest, n: int) -> None:
    """Volume.data_destroy (issue 21), crashed just after every ZFS mutation on real ZFS and
    recovered forward: the snapshot that goes (bookmark, metadata record, destroy) and the
    cloned one whose destroy is deferred (the bookmark must hold while the snapshot lingers)."""
    _every_mutation_crashed_on_real_zfs(request, "volume.data_destroy", n)


def _every_mutation_crashed_on_real_zfs(request: pytest.FixtureRequest, kind: str,
                                        n: int) -> None:
    """Scenario n of kind (tests/saga_scenarios.py), crashed just after each ZFS mutation
    and resumed; every recovery crashed too only with ZFSAGA_REAL_CRASH_POINTS=all."""
    from tests.saga_scenarios import SCENARIOS

    scenario = SCENARIOS[kind][n]
    harness = Harness(real_backend, f"real ZFS, {scenario.kind}", scenario=scenario,
                      cleanup=lambda z, root: destroy_tree(root))
    # Every recovery crashed at each of its boundaries too took 82 cases and 805 s here once
    # (all recovered); CI's hour takes the first level only (ZFSAGA_REAL_CRASH_POINTS=all: both).
    every = os.environ.get("ZFSAGA_REAL_CRASH_POINTS") == "all"
    report = harness.enumerate(modes=("resume",),
                               first_level=lambda label: label.startswith("zfs:after:"),
                               second_level=None if every else (lambda k, reached: []))
    _record(request, summary(report))
    assert report.points >= 1 and report.cases
    assert not report.failures, describe_failures(report)


def test_every_journal_cut_on_the_model_converges(request: pytest.FixtureRequest) -> None:
    """Crash at every boundary (and not at all), cut the journal back to each prefix of its
    records, recover: every case whose saga row survives ends in the before- or after-state
    with no tagged debris; cuts that lose the row report every tagged dataset as unknown, and
    (issue 18) every one made after the saga set its SR's witness is detected as a loss, which
    the next mutating call refuses until `zfsaga recover --yes`: those are no longer cuts a
    call heals on its own. Only a crash before the witness write (nothing of the saga in ZFS)
    loses its row undetected, and there is nothing to find."""
    report = enumerate_cuts(Harness(model_backend, "model", journal_parent=SHM))
    _record(request, cut_summary(report))
    assert len(report.cases) > 300 and report.row_lost > 0
    assert not report.failures, describe_failures(report)  # type: ignore[arg-type]
    assert report.row_lost_reported == report.row_lost
    assert 0 < report.row_lost_detected < report.row_lost


@pytest.mark.realzfs
@pytest.mark.timeout(1800)
def test_journal_cuts_on_real_zfs(request: pytest.FixtureRequest) -> None:
    """A deterministic sample on real ZFS (each case costs ~15 s in the emulated guest; the
    model runs every point and every cut): a crash just after the clone and just after the
    pivot, with the journal cut back to the saga's creation and to halfway."""
    real_more("the model cuts every journal at every point; the power-loss replay recovers "
              "real ZFS from journals the power cut left")
    harness = Harness(real_backend, "real ZFS", cleanup=lambda z, root: destroy_tree(root))
    labels = harness.reference()
    after_mutations = [k for k, label in enumerate(labels, 1) if label.startswith("zfs:after:")]
    # After the clone (a second clone is the risk) and after the pivot.
    points = [after_mutations[1], after_mutations[5]]
    report = enumerate_cuts(harness, points=points, keeps=lambda n: sorted({1, n // 2}))
    _record(request, cut_summary(report))
    assert not report.failures, describe_failures(report)  # type: ignore[arg-type]
    assert report.row_lost_reported == report.row_lost


def test_a_clone_probe_that_trusts_its_name_fails_the_cut_harness(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation test: the clone probe of before (its name only) makes a second clone once the
    journal forgets the first: the cut harness must see it (the review counted 115 cases)."""
    from zfsaga.steps.clone import CloneSnapshot

    monkeypatch.setattr(CloneSnapshot, "_moved_to", lambda self, ctx: None)
    report = enumerate_cuts(Harness(model_backend, "model (broken)", journal_parent=SHM))
    assert len(report.failures) > 50


def test_a_metadata_record_compares_by_its_bookmark_not_by_its_run() -> None:
    """Real ZFS gives every case a root and guids of its own: the SR state compares a
    metadata-only VDI's record by the bookmark it names, so two runs of one outcome are equal
    and a record naming no bookmark of the SR (or another one) is not."""
    from tests.crash_harness import _comparable_record
    from zfsaga.steps.metadata_only import encode

    def state(root: str, guid: str, recorded: str) -> str:
        sr = f"{root}/sr"
        marks = {f"{sr}/vdi#s3": {"guid": guid, "createtxg": "9"},
                 f"{sr}/vdi#s1": {"guid": guid + "1", "createtxg": "5"}}
        record = encode({"org.zfsaga:key": "vdi@s3"}, "4194304", recorded, f"{sr}/vdi#s3")
        return _comparable_record(record, sr, marks)

    assert state("pool/c1", "111", "111") == state("pool/c2", "222", "222")
    assert state("pool/c1", "111", "111") != state("pool/c1", "111", "333")  # no bookmark's
    assert state("pool/c1", "111", "111") != state("pool/c1", "111", "1111")  # another's


def test_every_saga_of_the_catalog_has_a_scenario() -> None:
    from tests.saga_scenarios import SCENARIOS
    from zfsaga.sagas.catalog import kinds

    assert set(SCENARIOS) == set(kinds())


@pytest.mark.parametrize("kind", saga_kinds())  # the catalog's: a new saga cannot be left out
def test_every_crash_point_of_each_saga_on_the_model(request: pytest.FixtureRequest,
                                                     kind: str) -> None:
    """The revert's enumeration, for every other saga of the catalog: every boundary, both
    modes, every recovery boundary; then every cut of its journal."""
    from tests.saga_scenarios import SCENARIOS

    # The plain revert has its own test above; its keyed variants (a plugin's Volume.revert,
    # any snapshot, a reader's view checked at every crash point) run here.
    for scenario in [s for s in SCENARIOS[kind] if s is not REVERT]:
        harness = Harness(model_backend, f"model, {scenario.kind}", journal_parent=SHM,
                          scenario=scenario)
        report = harness.enumerate()
        _record(request, summary(report))
        assert report.cases and not report.failures, describe_failures(report)
        assert {c.status for c in report.cases} >= {"succeeded"}
        cuts = enumerate_cuts(harness)
        _record(request, cut_summary(cuts))
        assert not cuts.failures, describe_failures(cuts)  # type: ignore[arg-type]
        assert cuts.row_lost_reported == cuts.row_lost



@pytest.mark.parametrize("kind", ["volume.create", "volume.clone", "volume.revert", "pool.create"])
def test_every_create_and_clone_born_bare_recovers_on_the_model(request: pytest.FixtureRequest,
                                                                kind: str) -> None:
    """What only a power cut makes, at every create and clone of every saga that has one:
    the dataset there without the properties it was born with (its ownership tag, its key,
    its reservation), or a clone tagged but without its reservation (ZFS 2.1.11 keeps a clone
    it could not reserve, and the process may die before zfsaga destroys it: steps/clone.py).
    Resumed or aborted, each ends
    in the before- or after-state with nothing left (the real replay: tests/test_power_loss)."""
    from tests.saga_scenarios import SCENARIOS

    for scenario in SCENARIOS[kind]:
        harness = Harness(model_backend, f"model, {scenario.kind}", journal_parent=SHM,
                          scenario=scenario)
        report = harness.enumerate_born_bare()
        _record(request, summary(report))
        assert report.points, "the saga makes no dataset: take it out of the list"
        assert report.cases and not report.failures, describe_failures(report)
        assert {c.status for c in report.cases} >= {"succeeded", "compensated"}


def _tamper_state(zfs, sr, row_id, state_dir, monkeypatch) -> None:
    zfs.create_zvol(f"{sr}/stray", 1 << 20)


def _tamper_leak(zfs, sr, row_id, state_dir, monkeypatch) -> None:
    from zfsaga.steps.base import OWNER

    zfs.create_zvol(f"{sr}/leaked", 1 << 20, props={OWNER: f"{row_id}/clone"})


def _tamper_journal(zfs, sr, row_id, state_dir, monkeypatch) -> None:
    import sqlite3

    db = sqlite3.connect(state_dir / "journal.db")
    db.execute("DELETE FROM event WHERE saga_id=? AND type='step_started'", (row_id,))
    db.commit()
    db.close()


def _tamper_recovery(zfs, sr, row_id, state_dir, monkeypatch) -> None:
    from zfsaga.sagas.engine import Engine

    real = Engine.recover
    monkeypatch.setattr(Engine, "recover",
                        lambda self, *a, **k: (self.zfs.exists(sr), real(self, *a, **k))[1])


#: Each invariant the harnesses check, broken on purpose after a revert (run clean, or cut off
#: inside its clone and then aborted or left as it was): the check must name it. The data
#: checksums' own check: tests/test_power_loss.py.
BROKEN_INVARIANTS = {
    "terminal": ("left", None, "saga ended running"),
    "before- or after-state": ("clean", _tamper_state, "SR is not the after-state"),
    "nothing tagged left": ("aborted", _tamper_leak, "compensated saga left tagged datasets"),
    "journal well-formed": ("clean", _tamper_journal, "ends without having started"),
    "second recovery idle": ("clean", _tamper_recovery, "a second recovery made"),
}


@pytest.mark.parametrize("broken", BROKEN_INVARIANTS)
def test_each_invariant_check_can_fail(broken: str, tmp_path, monkeypatch) -> None:
    from zfsaga.state.journal import Journal
    from zfsaga.steps.zfs.interface import ZfsHooks

    how, tamper, expected = BROKEN_INVARIANTS[broken]
    harness = Harness(model_backend, "model (an invariant broken)")
    labels = harness.reference()
    inside_clone = 1 + next(i for i, label in enumerate(labels)
                            if label.startswith("zfs:after:clone"))
    zfs, root = harness.new_backend()
    zfs.hooks = ZfsHooks()
    fixture = harness.scenario.build(zfs, root)
    crashed, _ = harness._start(zfs, fixture, tmp_path, None if how == "clean" else inside_clone)
    assert crashed == (how != "clean")
    if how == "aborted":
        harness._recover(zfs, tmp_path, "abort", None)
    journal = Journal(tmp_path / "journal.db")
    [row] = journal.list()
    journal.close()
    assert row.status == {"clean": "succeeded", "aborted": "compensated", "left": "running"}[how]
    if tamper is not None:
        problems, _ = harness.check(zfs, fixture["sr"], tmp_path)
        assert problems == [], problems  # unbroken, the same run passes
        tamper(zfs, fixture["sr"], row.id, tmp_path, monkeypatch)
    problems, _ = harness.check(zfs, fixture["sr"], tmp_path)
    assert any(expected in p for p in problems), problems
