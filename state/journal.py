"""The saga journal: one SQLite file per SR, in WAL mode with synchronous=FULL, every write in
BEGIN IMMEDIATE (a deferred transaction that reads then writes fails at once with "database is
locked" when another process wrote in between; IMMEDIATE waits on busy_timeout instead).

The append-only `event` table is the record; the `saga` row caches the current status. A partial
unique index allows one active (non-terminal) saga per resource: a durable semantic lock that
outlives crashes and makes a stuck saga block new work on its resource.

Only the standard library is imported here: `zfsaga list` and `show` stay fast.
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

SCHEMA_VERSION = 6
TERMINAL = ("succeeded", "compensated", "abandoned")
ACTIVE_SQL = "status NOT IN ('succeeded','compensated','abandoned')"
BUSY_TIMEOUT_MS = 15000

# Forward migrations, index = the version they produce. Never edit a shipped one: add the next.
_MIGRATIONS: list[list[str]] = [
    [],
    [
        """CREATE TABLE saga(
             id TEXT PRIMARY KEY, kind TEXT NOT NULL, kind_version INTEGER NOT NULL,
             resource TEXT NOT NULL, status TEXT NOT NULL, plan TEXT NOT NULL,
             params TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
             owner_pid INTEGER, owner_boot_id TEXT,
             created REAL NOT NULL, updated REAL NOT NULL)""",
        f"""CREATE UNIQUE INDEX one_active_per_resource ON saga(resource) WHERE {ACTIVE_SQL}""",
        """CREATE TABLE event(
             saga_id TEXT NOT NULL REFERENCES saga(id), seq INTEGER NOT NULL, ts REAL NOT NULL,
             type TEXT NOT NULL, step TEXT, attempt INTEGER, data TEXT,
             PRIMARY KEY(saga_id, seq))""",
    ],
    [
        # v2: operator actions name who did them; list by status without a scan.
        "ALTER TABLE event ADD COLUMN actor TEXT",
        "CREATE INDEX saga_status ON saga(status, updated)",
    ],
    [
        # v3: each event records the status it moved the saga to (NULL: unchanged), so the
        # cached saga.status can be checked against the record (check_well_formed).
        "ALTER TABLE event ADD COLUMN status TEXT",
    ],
    [
        # v4: every mutating call asks for the active sagas: an index of them alone, so the
        # question costs the same at 100 finished sagas and at 100,000. And the ids `gc`
        # forgot, so a dataset still tagged by one (a reverted VDI's head) is not taken for
        # the debris of a saga whose record was lost.
        f"CREATE INDEX saga_active ON saga(id) WHERE {ACTIVE_SQL}",
        "CREATE TABLE forgotten(id TEXT PRIMARY KEY, kind TEXT, status TEXT, ts REAL)",
    ],
    [
        # v5: each saga's generation, the number its SR's witness (org.zfsaga:journal-gen)
        # is set to before the saga's first step: a journal whose newest generation is behind
        # the witness lost records. `gc` keeps the generation of what it forgets; an
        # operator's acknowledgement of a loss (`zfsaga recover --yes`) lifts the floor.
        "ALTER TABLE saga ADD COLUMN gen INTEGER",
        "CREATE INDEX saga_gen ON saga(gen) WHERE gen IS NOT NULL",
        "ALTER TABLE forgotten ADD COLUMN gen INTEGER",
        """CREATE TABLE acknowledged(gen INTEGER NOT NULL, ts REAL NOT NULL, actor TEXT,
             reason TEXT)""",
    ],
    [
        # v6: every saga's start asks for the journal's generation, the newest of the sagas'
        # and of those gc forgot: an index of the forgotten generations, so the question
        # costs the same after gc forgot 100,000 sagas as before it forgot any (it read
        # every forgotten row: 6x an empty journal's start at 100,000).
        "CREATE INDEX forgotten_gen ON forgotten(gen) WHERE gen IS NOT NULL",
    ],
]
assert len(_MIGRATIONS) == SCHEMA_VERSION + 1


class JournalError(RuntimeError):
    """The journal cannot be used (I/O error, newer schema). Fatal for the process: a failed
    commit is never retried in a loop (fsyncgate); recovery re-reads the journal."""


class AmbiguousId(LookupError):
    """A saga id prefix that matches more than one saga."""

    def __init__(self, prefix: str, ids: list[str]) -> None:
        more = ", ..." if len(ids) > 5 else ""
        super().__init__(f"saga id {prefix!r} is ambiguous: it matches {', '.join(ids[:5])}"
                         f"{more}; type more of it")
        self.ids = ids


class ResourceTaken(RuntimeError):
    """Another active saga holds the resource (the durable one-active rule)."""

    def __init__(self, resource: str, saga: "SagaRow") -> None:
        super().__init__(f"{resource} is taken by saga {saga.id} ({saga.kind}, {saga.status})")
        self.resource = resource
        self.saga = saga


@dataclass
class Event:
    saga_id: str
    seq: int
    ts: float
    type: str
    step: str | None
    attempt: int | None
    data: dict[str, Any]
    actor: str | None = None
    status: str | None = None  # the status this event moved the saga to; None: unchanged


@dataclass
class SagaRow:
    id: str
    kind: str
    kind_version: int
    resource: str
    status: str
    plan: list[dict[str, Any]]
    params: dict[str, Any]
    attempts: int
    last_error: str | None
    owner_pid: int | None
    owner_boot_id: str | None
    created: float
    updated: float
    events: list[Event] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def new_saga_id() -> str:
    """Sortable by creation time (ms timestamp prefix), unique by its random tail."""
    return f"{int(time.time() * 1000):012x}-{uuid.uuid4().hex[:8]}"


class Journal:
    """One SR's journal. `boundary` is called before and after every commit (fault injection)."""

    def __init__(self, path: str | os.PathLike[str],
                 boundary: Callable[[str], None] | None = None, *,
                 readonly: bool = False) -> None:
        """Open (and, unless `readonly`, create or migrate) the journal at path. A read-only
        journal never writes a byte: an unprivileged operator can list and show, and a
        missing or damaged journal is reported, never replaced."""
        self.path = Path(path)
        self.readonly = readonly
        self.created_now = False
        self._boundary = boundary or (lambda label: None)
        try:
            if readonly:
                self._open_readonly()
            else:
                self._open_writable()
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: {exc}: it is damaged; restore it from a "
                               f"backup, or move it aside and run `zfsaga recover` to list "
                               f"what its sagas left tagged") from None

    def _open_readonly(self) -> None:
        if not self.path.exists():
            raise JournalError(f"no journal at {self.path}")
        self._refuse_if_emptied()
        self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                   isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        version = self.schema_version()
        if version != SCHEMA_VERSION:
            raise JournalError(f"journal {self.path} has schema {version}, this zfsaga reads "
                               f"{SCHEMA_VERSION}: a command that acts (zfsaga recover) "
                               f"migrates it")

    def _open_writable(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Creation and migration are serialized by a lock file of their own, so a process
        # never mistakes the moment between another's create and its first write for a
        # journal that was emptied.
        fd = os.open(self.path.with_name(self.path.name + ".init"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            new = not self.path.exists() or self.path.stat().st_size == 0
            if new:
                self._refuse_if_emptied()
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       timeout=BUSY_TIMEOUT_MS / 1000)
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self.created_now = new
        finally:
            os.close(fd)

    def _refuse_if_emptied(self) -> None:
        """A zero-length journal.db where a journal has lived (its lock files, its WAL) was
        emptied, not never made: starting afresh would forget stuck sagas and their holds."""
        if not self.path.exists() or self.path.stat().st_size != 0:
            return
        locks = self.path.parent / "locks"
        wal = self.path.with_name(self.path.name + "-wal")
        evidence = [str(p) for p in (locks, wal) if p.exists() and (
            any(p.iterdir()) if p.is_dir() else p.stat().st_size > 0)]
        if evidence or self.readonly:
            raise JournalError(
                f"journal {self.path} is empty (0 bytes)"
                + (f", yet {' and '.join(evidence)} show a journal lived here" if evidence
                   else "") +
                ": refusing to start over, which would forget its sagas. Restore it from a "
                "backup; or, to start afresh knowingly, move the directory aside and run "
                "`zfsaga recover`, which lists the datasets its sagas left tagged")

    def close(self) -> None:
        self._db.close()

    # -- schema --------------------------------------------------------------------------------
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise JournalError(f"journal {self.path} has schema {current}, newer than this "
                               f"zfsaga ({SCHEMA_VERSION}): refusing to touch it")
        if current == SCHEMA_VERSION:
            return
        with self._write():
            current = self.schema_version()  # another process may have migrated meanwhile
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- transactions --------------------------------------------------------------------------
    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, kind, exc, tb) -> None:
            if kind is None:
                self.db.execute("COMMIT")
            elif self.db.in_transaction:
                self.db.execute("ROLLBACK")

    def _write(self) -> "_Tx":
        return Journal._Tx(self._db)

    def _commit(self, label: str, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        self._boundary(f"journal:before:{label}")
        try:
            with self._write() as db:
                result = fn(db)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: {label}: {exc}") from None
        self._boundary(f"journal:after:{label}")
        return result

    # -- writes --------------------------------------------------------------------------------
    def create_saga(self, kind: str, kind_version: int, resource: str,
                    plan: list[dict[str, Any]], params: dict[str, Any], *,
                    witnessed: bool = False) -> str:
        """Record a new pending saga with its frozen plan and resolved inputs. `witnessed`:
        the saga takes the next generation, in the same transaction (`generation_of`)."""
        saga_id = new_saga_id()
        now = time.time()

        def insert(db: sqlite3.Connection) -> None:
            active = self._active_on(db, resource)
            if active is not None:
                raise ResourceTaken(resource, active)
            gen = self._generation(db) + 1 if witnessed else None
            db.execute("INSERT INTO saga(id, kind, kind_version, resource, status, plan, params,"
                       " owner_pid, owner_boot_id, created, updated, gen)"
                       " VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                       (saga_id, kind, kind_version, resource, "pending", json.dumps(plan),
                        json.dumps(params, sort_keys=True), os.getpid(), boot_id(), now, now,
                        gen))
            self._insert_event(db, saga_id, "saga_created", None, None, {}, None, now,
                               "pending")

        self._commit("saga_created", insert)
        return saga_id

    def append(self, saga_id: str, type_: str, *, step: str | None = None,
               attempt: int | None = None, data: dict[str, Any] | None = None,
               status: str | None = None, error: str | None = None, actor: str | None = None,
               count_attempt: bool = False, claim: bool = False) -> None:
        """Append one event and, in the same transaction, update the saga's cached status."""
        now = time.time()

        def write(db: sqlite3.Connection) -> None:
            self._insert_event(db, saga_id, type_, step, attempt, data or {}, actor, now,
                               status)
            sets, args = ["updated=?"], [now]
            if status is not None:
                sets.append("status=?")
                args.append(status)
            if error is not None:
                sets.append("last_error=?")
                args.append(error)
            if count_attempt:
                sets.append("attempts=attempts+1")
            if claim:
                sets += ["owner_pid=?", "owner_boot_id=?"]
                args += [os.getpid(), boot_id()]
            db.execute(f"UPDATE saga SET {', '.join(sets)} WHERE id=?", (*args, saga_id))

        self._commit(type_, write)

    def _insert_event(self, db: sqlite3.Connection, saga_id: str, type_: str, step: str | None,
                      attempt: int | None, data: dict[str, Any], actor: str | None,
                      ts: float, status: str | None) -> None:
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM event WHERE saga_id=?",
                         (saga_id,)).fetchone()[0]
        db.execute("INSERT INTO event(saga_id, seq, ts, type, step, attempt, data, actor, status)"
                   " VALUES(?,?,?,?,?,?,?,?,?)",
                   (saga_id, seq, ts, type_, step, attempt, json.dumps(data, sort_keys=True),
                    actor, status))

    def gc(self, older_than_s: float, *, dry_run: bool = False) -> list[str]:
        """Forget terminal sagas last updated longer ago than older_than_s."""
        cutoff = time.time() - older_than_s
        ids = [r[0] for r in self._db.execute(
            f"SELECT id FROM saga WHERE NOT ({ACTIVE_SQL}) AND updated < ? ORDER BY id",
            (cutoff,))]
        if ids and not dry_run:
            def delete(db: sqlite3.Connection) -> None:
                for saga_id in ids:
                    db.execute("INSERT OR REPLACE INTO forgotten(id, kind, status, ts, gen)"
                               " SELECT id, kind, status, ?, gen FROM saga WHERE id=?",
                               (time.time(), saga_id))
                    db.execute("DELETE FROM event WHERE saga_id=?", (saga_id,))
                    db.execute("DELETE FROM saga WHERE id=?", (saga_id,))
            self._commit("gc", delete)
        return ids

    def forget(self, saga_ids: list[str], actor: str | None = None) -> None:
        """Record sagas this journal has no rows for as known-and-forgotten (an operator's
        acknowledgement after a journal was lost)."""
        def write(db: sqlite3.Connection) -> None:
            for saga_id in saga_ids:
                db.execute("INSERT OR IGNORE INTO forgotten(id, kind, status, ts)"
                           " VALUES(?, 'unknown', ?, ?)",
                           (saga_id, f"acknowledged by {actor or 'operator'}", time.time()))
        self._commit("forget", write)

    def acknowledge_generation(self, gen: int, actor: str | None, reason: str) -> None:
        """An operator's acknowledgement that the records up to generation `gen` (the SR's
        witness) are lost: the journal stands at `gen` from now on."""
        self._commit("acknowledged", lambda db: db.execute(
            "INSERT INTO acknowledged(gen, ts, actor, reason) VALUES(?,?,?,?)",
            (gen, time.time(), actor, reason)))

    def checkpoint(self) -> None:
        """Copy what the -wal holds into journal.db (SQLite does so only at 1,000 pages, and a
        call ends with os._exit): committed records then survive a lost or damaged -wal.
        PASSIVE: it never waits for another process's reader, and costs a few ms (one fsync of
        journal.db under synchronous=FULL). A checkpoint that cannot finish is harmless: what
        it left stays in the -wal, and the witness still detects its loss. When this process
        found journal.db sound, the file as the checkpoint leaves it is stamped so (`damage`)."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            return  # best effort: nothing committed depends on it
        if self._sound:
            self._stamp()

    _sound = False  # this process checked journal.db's pages, or found its stamp current

    def damage(self) -> str | None:
        """What SQLite's quick check finds wrong with the journal's pages (a page of
        journal.db overwritten), or None. The check reads every page (10 ms at 1,000 sagas, 40
        at 10,000), so it is skipped when journal.db is exactly as a zfsaga process last left
        it: same inode, size and mtime (ns) as the stamp beside it, written after a check or
        after a checkpoint of a process that had checked. Anything else that writes the file
        changes its mtime, and the next call checks every page."""
        if self._stat() == self._read_stamp():
            self._sound = True
            return None
        try:
            found = [r[0] for r in self._db.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            return str(exc)
        if found != ["ok"]:
            return "; ".join(found[:3])
        self._sound = True
        self._stamp()
        return None

    def _stamp_path(self) -> Path:
        return self.path.with_name(self.path.name + ".checked")

    def _stat(self) -> str | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return f"{st.st_ino} {st.st_size} {st.st_mtime_ns}"

    def _read_stamp(self) -> str | None:
        try:
            return self._stamp_path().read_text(encoding="ascii").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def _stamp(self) -> None:
        if self.readonly:
            return
        tmp = self._stamp_path().with_name(f"{self._stamp_path().name}.{os.getpid()}")
        try:
            tmp.write_text(f"{self._stat()}\n", encoding="ascii")
            os.replace(tmp, self._stamp_path())  # whole or absent: a torn stamp never matches
        except OSError:
            pass  # without a stamp the next call checks every page: slower, never wrong

    # -- the witness ---------------------------------------------------------------------------
    @staticmethod
    def _generation(db: sqlite3.Connection) -> int:
        return db.execute(
            "SELECT MAX(COALESCE((SELECT MAX(gen) FROM saga WHERE gen IS NOT NULL), 0),"
            " COALESCE((SELECT MAX(gen) FROM forgotten WHERE gen IS NOT NULL), 0),"
            " COALESCE((SELECT MAX(gen) FROM acknowledged), 0))").fetchone()[0]

    def generation(self) -> int:
        """The newest generation this journal recorded (or had acknowledged)."""
        return self._generation(self._db)

    def generation_of(self, saga_id: str) -> int | None:
        r = self._db.execute("SELECT gen FROM saga WHERE id=?", (saga_id,)).fetchone()
        return r[0] if r else None

    def legacy_active(self, keyed: str) -> list[SagaRow]:
        """Active sagas recorded before SRs were keyed by guid: their resource is the SR's
        name as it was typed, not starting with `keyed` (the SR keys' prefix)."""
        return [r for r in map(self._row, self._db.execute(
            f"SELECT {self._COLUMNS} FROM saga INDEXED BY saga_active WHERE {ACTIVE_SQL}"
            " ORDER BY id")) if not r.resource.startswith(keyed)]

    def rekey(self, saga_id: str, key: str) -> bool:
        """Move one active saga to the resource `key`, unless another active saga holds it."""
        def move(db: sqlite3.Connection) -> bool:
            if self._active_on(db, key) is not None:
                return False
            db.execute("UPDATE saga SET resource=? WHERE id=?", (key, saga_id))
            return True

        return self._commit("rekey", move)

    # -- reads ---------------------------------------------------------------------------------
    def knows(self, saga_id: str) -> bool:
        """Whether this journal has a record of the saga, or forgot it on purpose (gc)."""
        return self._db.execute("SELECT 1 FROM saga WHERE id=? UNION ALL SELECT 1 FROM "
                                "forgotten WHERE id=? LIMIT 1",
                                (saga_id, saga_id)).fetchone() is not None

    _COLUMNS = ("id, kind, kind_version, resource, status, plan, params, attempts, last_error,"
                " owner_pid, owner_boot_id, created, updated")

    @staticmethod
    def _row(r: tuple) -> SagaRow:
        return SagaRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), *r[7:])

    def _active_on(self, db: sqlite3.Connection, resource: str) -> SagaRow | None:
        r = db.execute(f"SELECT {self._COLUMNS} FROM saga WHERE resource=? AND {ACTIVE_SQL}",
                       (resource,)).fetchone()
        return self._row(r) if r else None

    def get(self, saga_id: str, *, events: bool = True) -> SagaRow | None:
        r = self._db.execute(f"SELECT {self._COLUMNS} FROM saga WHERE id=?",
                             (saga_id,)).fetchone()
        if r is None:
            return None
        row = self._row(r)
        if events:
            row.events = list(self.events(saga_id))
        return row

    def find(self, prefix: str) -> SagaRow | None:
        """A saga by id or unique id prefix (operators type prefixes). An empty prefix matches
        nothing; one that matches several raises AmbiguousId naming them."""
        if not prefix:
            return None
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._db.execute("SELECT id FROM saga WHERE id LIKE ? ESCAPE '\\' ORDER BY id"
                                " LIMIT 6", (escaped + "%",)).fetchall()
        if len(rows) > 1:
            raise AmbiguousId(prefix, [r[0] for r in rows])
        return self.get(rows[0][0]) if rows else None

    def events(self, saga_id: str) -> Iterator[Event]:
        for r in self._db.execute("SELECT saga_id, seq, ts, type, step, attempt, data, actor,"
                                  " status FROM event WHERE saga_id=? ORDER BY seq", (saga_id,)):
            yield Event(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6] or "{}"), r[7],
                        r[8])

    def active_query(self, resource: str | None = None) -> tuple[str, tuple]:
        """The query behind `active`: it runs on every mutating call, so it reads the partial
        index of active sagas (schema v4), never the whole saga table."""
        sql = f"SELECT {self._COLUMNS} FROM saga INDEXED BY saga_active WHERE {ACTIVE_SQL}"
        if resource is None:
            return sql + " ORDER BY id", ()
        return sql + " AND resource=? ORDER BY id", (resource,)

    def active(self, resource: str | None = None) -> list[SagaRow]:
        sql, args = self.active_query(resource)
        return [self._row(r) for r in self._db.execute(sql, args)]

    def count(self, status: str | None = None) -> int:
        if status is None:
            return self._db.execute("SELECT COUNT(*) FROM saga").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM saga WHERE status=?",
                                (status,)).fetchone()[0]

    def list(self, status: str | None = None, limit: int = -1) -> list[SagaRow]:
        sql = f"SELECT {self._COLUMNS} FROM saga"
        args: tuple = ()
        if status is not None:
            sql += " WHERE status=?"
            args = (status,)
        return [self._row(r) for r in self._db.execute(sql + " ORDER BY id DESC LIMIT ?",
                                                       (*args, limit))]

    def check_well_formed(self, saga_id: str | None = None) -> list[str]:
        """Problems with the journal's own consistency (for tests and `zfsaga show`): the
        database's integrity, and for each saga (or the one named) that its record tells one
        coherent story (see `saga_problems`)."""
        problems = [f"integrity: {r[0]}" for r in self._db.execute("PRAGMA integrity_check")
                    if r[0] != "ok"]
        rows = self.list(limit=-1) if saga_id is None else [self.get(saga_id, events=False)]
        for row in filter(None, rows):
            problems += [f"{row.id}: {p}" for p in saga_problems(row, list(self.events(row.id)))]
        return problems


def saga_problems(row: SagaRow, events: list[Event]) -> list[str]:
    """What is wrong with one saga's record: sequence gaps; a step event for a step the plan
    does not have; a completion or failure without an earlier start; a compensation event for a
    forward-only step; a status move the lifecycle forbids; a cached status that is not the
    one its events end on. A well-formed journal has none of these."""
    from zfsaga.state.lifecycle import legal_move  # plain data: no transitions import

    if not events:
        return ["saga without events"]
    problems = []
    if [e.seq for e in events] != list(range(1, len(events) + 1)):
        problems.append("event sequence has gaps")
    if events[0].type != "saga_created":
        problems.append(f"first event is {events[0].type}, not saga_created")
    kinds = {s.get("name"): s.get("kind") for s in row.plan}
    started: set[tuple[str, str]] = set()
    status = None
    for e in events:
        where = f"event {e.seq} ({e.type})"
        if e.step is not None:
            if e.step not in kinds:
                problems.append(f"{where}: step {e.step!r} is not in the plan")
            phase = "comp" if e.type.startswith("comp_") else "step"
            if e.type.endswith("_started"):
                started.add((phase, e.step))
            elif (phase, e.step) not in started:
                problems.append(f"{where}: {e.step} ends without having started")
            if phase == "comp" and kinds.get(e.step) != "compensatable":
                problems.append(f"{where}: {e.step} is {kinds.get(e.step)}, never compensated")
        if e.status is not None:
            if status is not None and not legal_move(status, e.status):
                problems.append(f"{where}: the lifecycle has no move {status} -> {e.status}")
            status = e.status
    if status is not None and status != row.status:
        problems.append(f"status is {row.status} but the events end on {status}")
    return problems
