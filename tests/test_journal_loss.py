"""A journal that lost records is detected from outside it (issue 18, defect 2 and part of 8).

Each saga's generation is recorded in the journal, then written to the SR's dataset as
`org.zfsaga:journal-gen` before the saga's first step: the mark never names a generation the
journal did not commit. A journal behind its SR's mark (deleted, its `-wal` lost, truncated or
corrupted before a checkpoint) or unreadable (a corrupt page) is refused by every mutating call,
in every process, until `zfsaga recover --yes --reason ...` acknowledges it; `recover` reports
what the lost sagas left (tagged datasets, snapshots, holds) and destroys nothing.

Every loss mode runs against two states: a revert parked stuck after its pivot, its hold still
on the snapshot (its records checkpointed into journal.db at its end), and a revert killed just
after its pivot (its records only in the `-wal`, as a process dies before any checkpoint)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POOL, destroy_tree, real_zfs
from tests.crash_harness import build_fixture
from tests.test_cli import model_pool
from zfsaga.steps import srs
from zfsaga.steps.base import OWNER

WAL_HEADER, FRAME = 32, 24 + 4096


class Pool:
    """An SR with a VDI and snapshots on the file-shared model, and `zfsaga` run as a process."""

    def __init__(self, zfs, root: str, state: Path, env: dict[str, str]) -> None:
        self.zfs, self.state, self.env = zfs, state, env
        self.fx = build_fixture(zfs, root)
        self.journal = state / "journal.db"

    def cli(self, *args: str, faults: str | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env, **({"ZFSAGA_FAULTS": faults} if faults else {}))
        return subprocess.run([sys.executable, "-m", "zfsaga.cli", "--sr", self.fx["sr"],
                               "--state-dir", str(self.state), *args],
                              capture_output=True, text=True, env=env, timeout=120)

    def revert(self, faults: str | None = None, snapshot: str | None = None):
        return self.cli("revert", self.fx["vdi"], snapshot or self.fx["snapshot"],
                        faults=faults)

    def everything(self) -> dict[str, str | None]:
        """Every dataset and snapshot of the SR with its ownership tag."""
        return {n: p[OWNER].local for n, p in self.zfs.list_tree(self.fx["sr"],
                                                                [OWNER]).items()}

    def holds(self) -> dict[str, set[str]]:
        return {n: self.zfs.holds(n) for n in self.everything() if "@" in n
                and self.zfs.holds(n)}


@pytest.fixture
def pool(tmp_path) -> Pool:
    return model_pool(tmp_path, "jl", Pool)


# -- what is lost ------------------------------------------------------------------------------
def parked_after_pivot(pool: Pool) -> None:
    """A revert whose pivot took effect and whose hold release failed: parked stuck, the hold
    still on the snapshot."""
    out = pool.revert(faults="fail:release:permanent")
    assert out.returncode == 6, out.stderr


def killed_after_pivot(pool: Pool) -> None:
    """A revert killed just after its pivot (kill -9: no checkpoint), its hold still there."""
    out = pool.revert(faults="crash@zfs:after:promote")
    assert out.returncode == 137, out.stderr


STATES = {"parked": parked_after_pivot, "killed": killed_after_pivot}


# -- how it is lost ----------------------------------------------------------------------------
def _files(pool: Pool) -> dict[str, Path]:
    return {s: pool.journal.with_name("journal.db" + s) for s in ("", "-wal", "-shm")}


def delete_all(pool: Pool) -> None:
    for path in _files(pool).values():
        path.unlink(missing_ok=True)


def delete_wal(pool: Pool) -> None:
    _files(pool)["-wal"].unlink(missing_ok=True)
    _files(pool)["-shm"].unlink(missing_ok=True)  # a stale index would point past the end


def truncate_wal(offset: int):
    def cut(pool: Pool) -> None:
        wal = _files(pool)["-wal"]
        if wal.exists() and wal.stat().st_size > offset:
            os.truncate(wal, offset)
        _files(pool)["-shm"].unlink(missing_ok=True)
    cut.__name__ = f"truncate_wal_at_{offset}"
    return cut


def corrupt_wal(pool: Pool) -> None:
    """Flip bytes in the first frame's page: its checksum fails, and SQLite ignores it and
    every frame after it."""
    wal = _files(pool)["-wal"]
    if wal.exists() and wal.stat().st_size > WAL_HEADER + FRAME:
        with open(wal, "r+b") as f:
            f.seek(WAL_HEADER + 24 + 100)
            f.write(b"\xde\xad\xbe\xef" * 16)
    _files(pool)["-shm"].unlink(missing_ok=True)


def corrupt_main_page(pool: Pool) -> None:
    """Overwrite a page of journal.db after checkpointing it (what a bad sector would do)."""
    import sqlite3

    db = sqlite3.connect(pool.journal)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    assert pages > 3
    with open(pool.journal, "r+b") as f:
        f.seek(2 * size)  # page 3: a table or index page, never the header
        f.write(b"\x5a" * size)


LOSSES = {"delete_all": delete_all, "delete_wal": delete_wal,
          "truncate_wal_0": truncate_wal(0), "truncate_wal_header": truncate_wal(WAL_HEADER),
          "truncate_wal_mid_frame": truncate_wal(WAL_HEADER + FRAME // 2),
          "truncate_wal_two_frames": truncate_wal(WAL_HEADER + 2 * FRAME),
          "corrupt_wal": corrupt_wal, "corrupt_main_page": corrupt_main_page}
#: Losses that only reach what is still in the -wal: a parked saga ended with a checkpoint,
#: so its records are in journal.db and survive them (nothing is lost, nothing refused).
WAL_ONLY = {k for k in LOSSES if "wal" in k}


def _refused(out: subprocess.CompletedProcess, pool: Pool) -> None:
    assert out.returncode == 5, (out.returncode, out.stdout, out.stderr)
    assert str(pool.journal) in out.stderr, out.stderr
    assert f"zfsaga --sr {pool.fx['sr']} recover" in out.stderr, out.stderr


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("state", sorted(STATES))
def test_a_lost_journal_is_refused_until_recover_acknowledges_it(pool: Pool, state: str,
                                                                 loss: str) -> None:
    STATES[state](pool)
    held = pool.holds()
    [(snap, tags)] = held.items()
    assert any(t.startswith("zfsaga-revert-") for t in tags)
    tagged = {n for n, tag in pool.everything().items() if tag}
    assert tagged
    LOSSES[loss](pool)
    before = pool.everything()

    if state == "parked" and loss in WAL_ONLY:
        # Checkpointed at the saga's end: journal.db holds it, nothing was lost.
        [row] = json.loads(pool.cli("--json", "list").stdout)
        assert row["status"] == "stuck"
        return

    for _ in range(2):  # the first call, and every later one: each process checks
        _refused(pool.revert(), pool)
        assert pool.everything() == before and pool.holds() == held

    listed = pool.cli("list", "--all")
    assert listed.returncode != 0 or "(no" in listed.stdout
    assert "recover" in listed.stderr, listed.stderr

    report = pool.cli("recover")
    assert report.returncode == 5, (report.stdout, report.stderr)
    assert f"zfsaga-revert-" in report.stdout and snap in report.stdout, report.stdout
    for name in tagged:
        assert name in report.stdout, report.stdout
    assert pool.everything() == before and pool.holds() == held

    done = pool.cli("recover", "--yes", "--reason", "journal lost in a test")
    assert done.returncode == 0, (done.stdout, done.stderr)
    if loss == "corrupt_main_page":
        [aside] = [p for p in pool.state.iterdir() if p.name.startswith("journal.db.damaged-")]
        assert str(aside) in done.stdout
    assert pool.everything() == before and pool.holds() == held  # nothing destroyed

    again = pool.revert()
    assert again.returncode == 0, again.stderr


def test_a_saga_is_checkpointed_into_the_main_file(pool: Pool) -> None:
    parked_after_pivot(pool)
    assert not _files(pool)["-wal"].exists() or _files(pool)["-wal"].stat().st_size == 0 \
        or _checkpointed(pool)
    delete_wal(pool)
    [row] = json.loads(pool.cli("--json", "list").stdout)
    assert row["status"] == "stuck"


def _checkpointed(pool: Pool) -> bool:
    """Whether journal.db alone (no -wal) holds the saga."""
    return _sagas_in_main_file(pool.journal) == 1


def _sagas_in_main_file(journal: Path) -> int:
    """How many sagas a copy of journal.db alone (without its -wal) holds."""
    import shutil
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        shutil.copy(journal, copy)
        db = sqlite3.connect(copy)
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                return 0  # never checkpointed: the file holds no schema yet
            return db.execute("SELECT COUNT(*) FROM saga").fetchone()[0]
        finally:
            db.close()


def test_the_witness_is_on_the_sr_and_in_the_journal(pool: Pool) -> None:
    assert pool.revert().returncode == 0
    mark = pool.zfs.get_props(pool.fx["sr"], [srs.JOURNAL_GEN])[srs.JOURNAL_GEN].local
    assert mark == "1"
    assert pool.revert().returncode == 0
    assert pool.zfs.get_props(pool.fx["sr"], [srs.JOURNAL_GEN])[srs.JOURNAL_GEN].local == "2"


# -- through the installed entry points ---------------------------------------------------------
def test_the_plugin_refuses_every_verb_after_a_lost_journal(destdir, tmp_path) -> None:
    from tests.test_plugin_verbs import model_host_at
    from tests.xapi_daemon import ScriptError

    host = model_host_at(destdir, tmp_path)
    zfs, env = host.zfs, host.xapi.env
    sr = host.sr()
    vol = host.xapi.call("Volume.create", sr=sr, name="a", description="", size=1 << 20,
                         sharable=False)
    [state] = [p for p in (tmp_path / "state").iterdir() if p.name.startswith("sr-")]
    # Each call ends with os._exit: the saga's end checkpointed journal.db (a copy of the main
    # file alone holds both sagas), so a lost -wal cannot take them.
    assert _sagas_in_main_file(state / "journal.db") == 2
    for suffix in ("", "-wal", "-shm"):
        (state / f"journal.db{suffix}").unlink(missing_ok=True)
    before = host.zfs_state()
    for _ in range(2):
        with pytest.raises(ScriptError) as err:
            host.xapi.call("Volume.create", sr=sr, name="b", description="", size=1 << 20,
                           sharable=False)
        assert "recover" in str(err.value) and "journal.db" in str(err.value)
        assert host.zfs_state() == before
    assert [v["key"] for v in host.xapi.call("SR.ls", sr=sr)] == [vol["key"]]  # reads work
    cli = [sys.executable, "-m", "zfsaga.cli", "--sr", sr]
    run_env = dict(os.environ, **env)
    out = subprocess.run([*cli, "recover", "--yes", "--reason", "test"], capture_output=True,
                         text=True, env=run_env)
    assert out.returncode == 0, out.stderr
    assert host.zfs_state() == before
    host.xapi.call("Volume.create", sr=sr, name="b", description="", size=1 << 20,
                   sharable=False)


# -- real ZFS ----------------------------------------------------------------------------------
@pytest.mark.realzfs
def test_the_witness_on_real_zfs_detects_a_deleted_journal(tmp_path) -> None:
    zfs = real_zfs()
    root = f"{POOL}/j{os.urandom(5).hex()}"
    zfs.create_filesystem(root)
    env = dict(os.environ, ZFSAGA_SYSLOG="0", ZFSAGA_ZFS="real")
    try:
        pool = Pool(zfs, root, tmp_path / "state", env)
        assert pool.revert().returncode == 0
        mark = zfs.get_props(pool.fx["sr"], [srs.JOURNAL_GEN])[srs.JOURNAL_GEN].local
        assert mark == "1"
        delete_all(pool)
        before = pool.everything()
        _refused(pool.revert(), pool)
        assert pool.everything() == before
        assert pool.cli("recover", "--yes", "--reason", "test").returncode == 0
        assert pool.revert().returncode == 0
    finally:
        destroy_tree(root)


# -- the page check and its stamp --------------------------------------------------------------
class _Counting:
    """A connection that counts the quick checks run through it."""

    def __init__(self, db) -> None:
        self.db, self.checks = db, 0

    def execute(self, sql: str, *args):
        self.checks += "quick_check" in sql
        return self.db.execute(sql, *args)


def test_pages_are_checked_unless_the_file_is_as_zfsaga_left_it(tmp_path) -> None:
    from zfsaga.state.journal import Journal

    journal = Journal(tmp_path / "journal.db")
    for _ in range(30):
        journal.create_saga("vdi.revert", 1, f"sr-1/{os.urandom(4).hex()}", [], {"x": "y" * 500})
    counting = _Counting(journal._db)
    journal._db = counting
    assert journal.damage() is None and counting.checks == 1  # never stamped: checked
    journal.checkpoint()  # the file changes, and is stamped as this sound process left it
    assert journal.damage() is None and counting.checks == 1  # unchanged since: not again
    assert Journal(journal.path).damage() is None  # another process: the stamp is current
    with open(journal.path, "r+b") as f:  # a page overwritten behind zfsaga's back
        f.seek(2 * 4096)
        f.write(b"\x5a" * 4096)
    later = Journal(journal.path)  # the next call, a process of its own
    assert later.damage() is not None
