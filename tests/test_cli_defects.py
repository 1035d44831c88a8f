"""The operator CLI's wrong answers found in review (issue 8, items 5 and 7-9), each a defect
of its own, on the file-shared model: every call a separate `zfsaga` process."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POOL
from tests.test_cli import Pool, model_pool


@pytest.fixture
def pool(tmp_path) -> Pool:
    return model_pool(tmp_path, "cli")


def stuck_saga(pool: Pool, faults: str = "fail:set_props:permanent") -> str:
    out = pool.revert(faults=faults)
    assert out.returncode == 6, out.stderr
    [row] = pool.sagas("--status", "stuck")
    return row["id"]


def set_plan_version(pool: Pool, version: int) -> None:
    db = sqlite3.connect(pool.state / "journal.db")
    plan = json.loads(db.execute("SELECT plan FROM saga").fetchone()[0])
    plan[0]["version"] = version
    db.execute("UPDATE saga SET plan=?", (json.dumps(plan),))
    db.commit()
    db.close()


# -- 5 ------------------------------------------------------------------------------------------
def test_list_refuses_an_emptied_journal_and_writes_nothing(pool: Pool) -> None:
    stuck_saga(pool)
    journal = pool.state / "journal.db"
    journal.write_bytes(b"")
    out = pool.cli("list")
    assert out.returncode == 1 and "empty" in out.stderr and str(journal) in out.stderr
    assert "(no sagas)" not in out.stdout and journal.stat().st_size == 0
    again = pool.revert()
    assert again.returncode == 1 and journal.stat().st_size == 0
    assert "Traceback" not in again.stderr


# -- 7 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["abort"], ["resume", "--dry-run"], ["abort", "--dry-run"]])
def test_an_unknown_plan_is_refused_in_one_line(pool: Pool, command: list[str]) -> None:
    saga = stuck_saga(pool)
    set_plan_version(pool, 99)
    out = pool.cli(command[0], saga, "--reason", "x", "--yes", *command[1:])
    assert out.returncode == 5, out.stderr
    assert "not one this zfsaga knows" in out.stderr and "Traceback" not in out.stderr


# -- 8 ------------------------------------------------------------------------------------------
def test_resume_dry_run_of_a_saga_stuck_compensating_describes_the_undo(pool: Pool) -> None:
    saga = stuck_saga(pool, "fail:promote:permanent,fail:destroy:permanent")
    out = pool.cli("resume", saga, "--reason", "x", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "would compensate clone" in out.stdout and "would run" not in out.stdout


def test_abort_dry_run_of_a_succeeded_saga_is_refused(pool: Pool) -> None:
    assert pool.revert().returncode == 0
    [row] = pool.sagas("--all")
    out = pool.cli("abort", row["id"], "--reason", "x", "--dry-run")
    assert out.returncode == 5 and "succeeded" in out.stderr
    assert "would compensate" not in out.stdout


def test_abort_dry_run_of_a_compensated_saga_is_refused_not_a_keyerror(pool: Pool) -> None:
    assert pool.revert(faults="fail:promote:permanent").returncode == 1
    [row] = pool.sagas("--all")
    out = pool.cli("abort", row["id"], "--reason", "x", "--dry-run")
    assert out.returncode == 5 and "compensated" in out.stderr and "Traceback" not in out.stderr


def test_abandon_dry_run_describes_an_abandon(pool: Pool) -> None:
    saga = stuck_saga(pool)
    out = pool.cli("abandon", saga, "--reason", "x", "--dry-run")
    assert out.returncode == 0 and "would close saga" in out.stdout
    assert "touching nothing" in out.stdout and "would run" not in out.stdout
    assert pool.sagas("--status", "stuck")[0]["id"] == saga  # nothing changed


# -- 9 ------------------------------------------------------------------------------------------
def test_a_revert_that_compensated_exits_non_zero(pool: Pool) -> None:
    out = pool.revert(faults="fail:promote:permanent")
    assert out.returncode == 1 and "compensated" in out.stdout


def test_list_all_shows_every_saga_or_says_what_it_left_out(pool: Pool) -> None:
    from zfsaga.state.journal import Journal

    pool.revert()
    journal = Journal(pool.state / "journal.db")
    [row] = journal.list()
    db = journal._db
    db.execute("BEGIN")
    for i in range(1100):  # finished sagas, as a busy SR accumulates them
        db.execute("INSERT INTO saga(id, kind, kind_version, resource, status, plan, params,"
                   " created, updated) VALUES(?, 'vdi.revert', 1, 'sr-x', 'succeeded', ?, '{}',"
                   " 0, 0)", (f"0000{i:08d}-x", json.dumps(row.plan)))
    db.execute("COMMIT")
    journal.close()
    assert len(pool.sagas("--all")) == 1101
    out = pool.cli("--json", "list", "--all", "--limit", "10")
    assert len(json.loads(out.stdout)) == 10 and "10 of 1101" in out.stderr


def test_an_empty_id_matches_nothing_and_an_ambiguous_one_says_so(pool: Pool) -> None:
    saga = stuck_saga(pool)
    out = pool.cli("abort", "", "--reason", "x", "--yes")
    assert out.returncode == 2 and "empty" in out.stderr
    assert pool.sagas("--status", "stuck")[0]["id"] == saga  # untouched
    assert pool.revert(faults="fail:promote:permanent").returncode != 0  # blocked: a 2nd saga
    db = sqlite3.connect(pool.state / "journal.db")
    db.execute("INSERT INTO saga(id, kind, kind_version, resource, status, plan, params,"
               " created, updated) VALUES(?, 'vdi.revert', 1, 'sr-y', 'succeeded', '[]', '{}',"
               " 0, 0)", (saga[:4] + "zzzz",))
    db.commit()
    db.close()
    out = pool.cli("show", saga[:4])
    assert out.returncode == 2 and "ambiguous" in out.stderr
    assert pool.cli("show", "nosuchid").returncode == 4


def test_show_json_exits_6_on_a_stuck_saga_as_show_does(pool: Pool) -> None:
    saga = stuck_saga(pool)
    assert pool.cli("show", saga).returncode == 6
    out = pool.cli("--json", "show", saga)
    assert out.returncode == 6 and json.loads(out.stdout)["status"] == "stuck"


def test_recover_json_is_one_document_even_with_nothing_to_do(pool: Pool) -> None:
    assert pool.revert().returncode == 0
    out = pool.cli("--json", "recover")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["recovered"] == [] and doc["unknown_tags"] == {}
    pool.revert(faults="crash@zfs:before:promote")
    doc = json.loads(pool.cli("--json", "recover").stdout)
    assert [o["status"] for o in doc["recovered"]] == ["succeeded"]


def test_a_corrupt_journal_is_one_line_not_a_traceback(pool: Pool) -> None:
    assert pool.revert().returncode == 0
    journal = pool.state / "journal.db"
    data = bytearray(journal.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    journal.write_bytes(bytes(data))
    out = pool.cli("list", "--all")
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "recover --yes" in out.stderr
    # recover reports the damage and what it would do, and refuses until told (issue 18)
    out = pool.cli("recover")
    assert out.returncode == 5, out.stderr
    assert "Traceback" not in out.stderr and "damaged" in out.stdout
    assert "recover --yes" in out.stdout


@pytest.mark.parametrize("wait", ["nan", "inf", "-1"])
def test_a_wait_that_never_ends_is_refused(pool: Pool, wait: str) -> None:
    out = pool.revert("--wait", wait)
    assert out.returncode == 2 and "--wait" in out.stderr


def test_an_operator_resume_records_its_own_pid(pool: Pool) -> None:
    saga = stuck_saga(pool)
    first = json.loads(pool.cli("--json", "show", saga).stdout)["owner_pid"]
    pool.cli("resume", saga, "--reason", "pool fixed", "--yes")
    row = json.loads(pool.cli("--json", "show", saga).stdout)
    [resume] = [e for e in row["events"] if e["type"] == "operator_resume"]
    assert row["owner_pid"] != first
    assert f"pid {row['owner_pid']})" in resume["actor"]  # the operator's process owns it now


def test_list_with_an_unknown_status_is_a_usage_error(pool: Pool) -> None:
    stuck_saga(pool)
    out = pool.cli("list", "--status", "stuk")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_revert_without_sr_creates_nothing(pool: Pool, tmp_path) -> None:
    state = tmp_path / "fresh-state"
    out = subprocess.run([sys.executable, "-m", "zfsaga.cli", "--state-dir", str(state),
                          "revert", pool.fx["vdi"], pool.fx["snapshot"]],
                         capture_output=True, text=True, env=pool.env)
    assert out.returncode == 2 and "--sr" in out.stderr
    assert not state.exists()


def test_a_user_who_cannot_write_the_state_can_list_and_show(pool: Pool) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to become another user")
    import shutil
    import tempfile

    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            sys.executable, "-c", "import zfsaga.cli"],
                           capture_output=True, text=True, env=pool.env)
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot import zfsaga from this checkout: {probe.stderr[-200:]}")
    saga = stuck_saga(pool)
    # The state as root leaves it (files 0644), where another user can reach it.
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        shutil.copytree(pool.state, state)
        for p in [Path(tmp), state, *state.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        before = {p.name: p.stat().st_mtime_ns for p in state.rglob("*")}
        for cmd in (["list"], ["show", saga]):
            out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                  "--clear-groups", sys.executable, "-m", "zfsaga.cli",
                                  "--state-dir", str(state), *cmd],
                                 capture_output=True, text=True, env=pool.env)
            assert out.returncode in (0, 6), out.stderr
            assert saga in out.stdout and "readonly database" not in out.stderr
        assert {p.name: p.stat().st_mtime_ns for p in state.rglob("*")} == before


def test_diagram_into_a_missing_directory_is_an_error_not_not_found(pool: Pool) -> None:
    saga = stuck_saga(pool)
    out = pool.cli("diagram", saga, "--svg", "/nonexistent-dir/x.svg")
    assert out.returncode == 1 and "cannot write" in out.stderr


# -- review of issue 19 -------------------------------------------------------------------------
@pytest.mark.parametrize("cut", ["crash@zfs:before:hold", "crash@zfs:before:clone"])
def test_resume_dry_run_before_a_step_that_reports_facts_says_so(pool: Pool, cut: str) -> None:
    """A revert cut off before its clone: the steps after it read the clone's guid, a fact no
    probe can have yet. The dry run says what it can and which steps wait for that fact, where
    it died with a KeyError (a traceback, or exit 1 under --json) before."""
    out = pool.revert(faults=cut)
    assert out.returncode == 137, out.stderr
    [row] = pool.sagas()
    for json_flag in ([], ["--json"]):
        dry = pool.cli(*json_flag, "resume", row["id"], "--reason", "look", "--dry-run")
        assert dry.returncode == 0, dry.stderr[-800:]
        assert "Traceback" not in dry.stderr
        assert "would run swap_in (compensatable): after clone, whose guid it reads" in dry.stdout
    assert pool.sagas()[0]["status"] == row["status"]  # the dry run changed nothing
