"""The journal, the locks and the lifecycle on their own: schema and migrations, the durable
one-active-per-resource rule, 8 writer processes with zero "database is locked", flock
liveness across kill -9, and the lifecycle's legal moves."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from zfsaga.state import journal as journal_mod
from zfsaga.state.journal import Journal, JournalError, ResourceTaken
from zfsaga.state.lifecycle import IllegalMove, mermaid_lifecycle, next_status
from zfsaga.state.locks import LockBusy, ResourceLock


def test_new_journal_is_wal_full_and_current(tmp_path) -> None:
    j = Journal(tmp_path / "j.db")
    assert j.schema_version() == journal_mod.SCHEMA_VERSION
    assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert j.check_well_formed() == []


def test_old_schema_is_migrated_forward(tmp_path) -> None:
    db = sqlite3.connect(tmp_path / "j.db", isolation_level=None)
    for statement in journal_mod._MIGRATIONS[1]:
        db.execute(statement)
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO saga(id, kind, kind_version, resource, status, plan, params,"
               " created, updated) VALUES('old', 'k', 1, 'r', 'succeeded', '[]', '{}', 0, 0)")
    db.execute("INSERT INTO event(saga_id, seq, ts, type) VALUES('old', 1, 0, 'saga_created')")
    db.close()
    j = Journal(tmp_path / "j.db")
    assert j.schema_version() == journal_mod.SCHEMA_VERSION
    j.append("old", "operator_abandon", actor="tester")  # v2's actor column exists
    assert [e.actor for e in j.events("old")] == [None, "tester"]
    assert [e.status for e in j.events("old")] == [None, None]  # v3's status column exists


def _plan(*steps: tuple[str, str]) -> list[dict]:
    return [{"name": name, "step": "S", "version": 1, "kind": kind, "args": {}}
            for name, kind in steps]


def test_a_coherent_record_is_well_formed(tmp_path) -> None:
    j = Journal(tmp_path / "j.db")
    saga = j.create_saga("k", 1, "r", _plan(("a", "compensatable"), ("b", "pivot")), {})
    j.append(saga, "saga_started", status="running")
    j.append(saga, "step_started", step="a", attempt=1)
    j.append(saga, "step_done", step="a", attempt=1)
    j.append(saga, "step_started", step="b", attempt=1)
    j.append(saga, "step_failed", step="b", attempt=1, error="boom")
    j.append(saga, "saga_stuck", status="stuck", error="boom")
    j.append(saga, "operator_resume", status="running", actor="op")
    j.append(saga, "step_started", step="b", attempt=2)
    j.append(saga, "step_done", step="b", attempt=2)
    j.append(saga, "saga_succeeded", status="succeeded")
    assert j.check_well_formed() == []
    assert [e.status for e in j.events(saga)][-1] == "succeeded"


@pytest.mark.parametrize("story, problem", [
    ([("step_done", "a", None)], "a ends without having started"),
    ([("step_started", "zz", None)], "'zz' is not in the plan"),
    ([("step_started", "b", None), ("comp_started", "b", None)], "b is pivot, never compensated"),
    ([("comp_done", "a", None)], "a ends without having started"),
    ([("saga_succeeded", None, "succeeded")], "no move pending -> succeeded"),
    ([("saga_started", None, "running"), ("saga_succeeded", None, "succeeded"),
      ("operator_resume", None, "running")], "no move succeeded -> running"),
])
def test_an_incoherent_record_is_reported(tmp_path, story, problem) -> None:
    """The check the crash harness relies on can fail: each broken story is named."""
    j = Journal(tmp_path / "j.db")
    saga = j.create_saga("k", 1, "r", _plan(("a", "compensatable"), ("b", "pivot")), {})
    for type_, step, status in story:
        j.append(saga, type_, step=step, status=status)
    problems = j.check_well_formed()
    assert any(problem in p for p in problems), problems


def test_a_cached_status_that_disagrees_with_the_events_is_reported(tmp_path) -> None:
    j = Journal(tmp_path / "j.db")
    saga = j.create_saga("k", 1, "r", [], {})
    j.append(saga, "saga_started", status="running")
    j._db.execute("UPDATE saga SET status='succeeded' WHERE id=?", (saga,))
    assert j.check_well_formed() == [f"{saga}: status is succeeded but the events end on running"]
    fine = j.create_saga("k", 1, "r2", [], {})
    assert j.check_well_formed(fine) == []  # `zfsaga show` checks the saga it shows
    assert len(j.check_well_formed(saga)) == 1
    j._db.execute("DELETE FROM event WHERE saga_id=? AND seq=1", (saga,))
    assert any("gaps" in p for p in j.check_well_formed())


def test_a_newer_schema_is_refused(tmp_path) -> None:
    db = sqlite3.connect(tmp_path / "j.db")
    db.execute(f"PRAGMA user_version={journal_mod.SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(JournalError, match="newer"):
        Journal(tmp_path / "j.db")


def test_one_active_saga_per_resource(tmp_path) -> None:
    j = Journal(tmp_path / "j.db")
    first = j.create_saga("k", 1, "tank/sr", [], {})
    with pytest.raises(ResourceTaken, match=first):
        j.create_saga("k", 1, "tank/sr", [], {})
    j.create_saga("k", 1, "tank/other", [], {})  # other resources are free
    j.append(first, "saga_succeeded", status="succeeded")
    j.create_saga("k", 1, "tank/sr", [], {})  # terminal sagas release the resource


def _hammer(path: str, worker: int, rounds: int, errors) -> None:
    j = Journal(path)
    saga = j.create_saga("k", 1, f"r{worker}",
                         _plan(*((f"s{i}", "compensatable") for i in range(rounds))), {})
    for i in range(rounds):
        try:
            j.append(saga, "step_started", step=f"s{i}", attempt=1)
        except sqlite3.OperationalError as exc:
            errors.put(str(exc))
    j.close()


def test_eight_writer_processes_never_see_database_is_locked(tmp_path) -> None:
    path = str(tmp_path / "j.db")
    Journal(path).close()
    errors = multiprocessing.get_context("fork").Queue()
    procs = [multiprocessing.get_context("fork").Process(target=_hammer,
                                                         args=(path, w, 100, errors))
             for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert errors.empty()
    j = Journal(path)
    assert j._db.execute("SELECT COUNT(*) FROM event").fetchone()[0] == 8 * 101
    assert j.check_well_formed() == []


def test_lock_is_exclusive_bounded_and_freed_by_kill_9(tmp_path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from zfsaga.state.locks import ResourceLock; "
         f"l = ResourceLock({str(tmp_path)!r}, 'tank/sr').acquire(5); print('held', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    lock = ResourceLock(tmp_path, "tank/sr")
    assert not lock.is_free()
    started = time.monotonic()
    with pytest.raises(LockBusy, match="busy"):
        lock.acquire(0.5)
    assert 0.5 <= time.monotonic() - started < 3
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock.is_free()
    with lock.acquire(1):
        assert lock.held
    assert lock.path.exists()  # lock files are never deleted


def test_lifecycle_allows_only_legal_moves() -> None:
    assert next_status("pending", "start") == "running"
    assert next_status("running", "compensate") == "compensating"
    assert next_status("stuck", "resume") == "running"
    with pytest.raises(IllegalMove, match="forward-only"):
        next_status("running", "abort", abortable=False)
    with pytest.raises(IllegalMove, match="not one this zfsaga knows"):
        next_status("stuck", "resume", plan_known=False)
    for terminal in ("succeeded", "compensated", "abandoned"):
        for trigger in ("start", "abort", "resume", "park", "abandon"):
            with pytest.raises(IllegalMove):
                next_status(terminal, trigger)
    assert "class stuck here" in mermaid_lifecycle("stuck")


def test_the_active_sagas_are_found_through_an_index(tmp_path) -> None:
    """Every mutating call asks for the active sagas: the query must not scan the saga table
    (0.4 ms at 1,000 finished sagas, 71 ms at 100,000 before the index)."""
    journal = Journal(tmp_path / "journal.db")
    journal._db.execute("BEGIN")
    for i in range(2000):
        journal._db.execute(
            "INSERT INTO saga(id, kind, kind_version, resource, status, plan, params, created,"
            " updated) VALUES(?, 'k', 1, 'sr-1', 'succeeded', '[]', '{}', 0, 0)", (f"{i:08d}",))
    journal._db.execute("COMMIT")
    journal._db.execute("ANALYZE")
    for resource in (None, "sr-1"):
        sql, args = journal.active_query(resource)
        plan = [r[-1] for r in journal._db.execute("EXPLAIN QUERY PLAN " + sql, args)]
        assert any("saga_active" in step for step in plan), plan
        assert not any(step.startswith("SCAN saga") and "INDEX" not in step for step in plan)
    assert journal.active() == []
    journal.close()


#: Query-plan steps that read a table whole: a saga's start may not make one (its cost would
#: grow with the finished and forgotten sagas). The partial index of active sagas is whole-read
#: by design: it holds the active sagas alone.
def _whole_reads(db: sqlite3.Connection, sql: str) -> list[str]:
    plan = [r[-1] for r in db.execute("EXPLAIN QUERY PLAN " + sql)]
    return [step for step in plan
            if any(f" {t}" in f" {step} " for t in ("saga", "event", "forgotten"))
            and (step.startswith("SCAN") or (step.startswith("SEARCH") and "USING" not in step))
            and "saga_active" not in step]


def test_a_saga_start_reads_no_table_whole(tmp_path) -> None:
    """Every statement a saga makes from its start to its end (the engine opening the journal,
    the damage and witness checks, the recovery scan, recording and driving it) reads through
    an index, on a journal holding finished sagas and sagas gc forgot: a start then costs the
    same at 100,000 of either as at none (bench/scale.py measures it). Before schema v6 the
    witness's generation read every forgotten saga (6.4x the empty journal's start)."""
    from zfsaga.sagas import volume_create
    from zfsaga.sagas.runner import open_engine
    from zfsaga.steps import srs
    from zfsaga.steps.zfs.model import ModelZfs

    zfs = ModelZfs(pools=("tank",))
    zfs.create_filesystem("tank/sr")
    guid = srs.adopt(zfs, "tank/sr").guid
    state = tmp_path / "state"
    for n in range(5):  # five finished sagas, the first three then forgotten by gc
        engine = open_engine(zfs, state, lock_wait=5)
        volume_create.start(engine, srs.sr_key(guid), "tank/sr", guid, "d", "", 1 << 20, False)
        engine.journal.close()
        if n == 2:
            journal = Journal(state / "journal.db")
            time.sleep(0.01)
            assert len(journal.gc(0.0)) == 3
            journal.close()
    engine = open_engine(zfs, state, lock_wait=5)  # a new call's: nothing checked yet
    db = engine.journal._db
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    outcome = volume_create.start(engine, srs.sr_key(guid), "tank/sr", guid, "d", "",
                                  1 << 20, False)
    db.set_trace_callback(None)
    assert outcome.status == "succeeded"
    queries = [s for s in statements if s.split(None, 1)[0].upper() in
               ("SELECT", "INSERT", "UPDATE", "DELETE")]
    assert len(queries) > 10, statements  # the trace saw the saga's statements
    whole = {sql: steps for sql in queries if (steps := _whole_reads(db, sql))}
    assert whole == {}
    engine.journal.close()


def test_gc_leaves_the_file_bounded(tmp_path) -> None:
    """Rounds of sagas, each followed by gc: the file stops growing with the rounds. SQLite
    reuses the pages gc frees; only the ledger of forgotten ids (a short row each, kept so a
    dataset a forgotten saga tagged is never taken for a lost saga's debris) grows."""
    journal = Journal(tmp_path / "journal.db")
    plan = [{"name": "a", "step": "S", "version": 1, "kind": "compensatable",
             "args": {"payload": "x" * 400}}]
    sizes = []
    for _ in range(4):
        for i in range(300):
            saga = journal.create_saga("k", 1, f"r{i}", plan, {"sr": "tank/sr", "pad": "y" * 400})
            journal.append(saga, "saga_started", status="running")
            journal.append(saga, "step_started", step="a", attempt=1, data={"p": "z" * 200})
            journal.append(saga, "step_done", step="a", attempt=1, data={"p": "z" * 200})
            journal.append(saga, "saga_succeeded", status="succeeded")
        time.sleep(0.01)
        assert len(journal.gc(0.0)) == 300
        journal.checkpoint()
        sizes.append(os.path.getsize(tmp_path / "journal.db"))
    first_round = sizes[0]
    ledger = 300 * 3 * 120  # the three later rounds' forgotten ids, at 120 bytes a row at most
    assert sizes[-1] <= first_round + ledger, sizes
    assert journal.count() == 0
    journal.close()
