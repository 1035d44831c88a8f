"""The operator CLI and the process model, end to end: every call a separate process against
one pool (the file-shared model here; the same commands run on real ZFS in the guest), with
kill -9 mid-saga, stuck sagas shown, resumed, aborted and abandoned, 8 racing processes, a busy
resource, and read-only commands that import nothing heavy."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import POOL, destroy_tree, real_more, real_zfs
from tests.crash_harness import build_fixture, sr_state
from zfsaga.state.locks import ResourceLock
from zfsaga.steps import srs
from zfsaga.steps.zfs.shared_model import SharedModelZfs


class Pool:
    """A fixture SR on a backend every subprocess can reach, and a way to run `zfsaga`."""

    def __init__(self, zfs, root: str, state: Path, env: dict[str, str]) -> None:
        self.zfs, self.state, self.env = zfs, state, env
        self.fx = build_fixture(zfs, root)
        self.before = sr_state(zfs, self.fx["sr"])

    def cli(self, *args: str, faults: str | None = None, timeout: float = 120):
        env = dict(self.env)
        if faults:
            env["ZFSAGA_FAULTS"] = faults
        return subprocess.run([sys.executable, "-m", "zfsaga.cli", "--sr", self.fx["sr"],
                               "--state-dir", str(self.state), *args],
                              capture_output=True, text=True, env=env, timeout=timeout)

    def revert(self, *extra: str, faults: str | None = None, timeout: float = 120):
        return self.cli(*extra, "revert", self.fx["vdi"], self.fx["snapshot"], faults=faults,
                        timeout=timeout)

    def sagas(self, *flags: str) -> list[dict]:
        out = self.cli("--json", "list", *flags)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


def model_pool(tmp_path, name: str, kind: type | None = None):
    """A Pool (or `kind`, built alike) on the file-shared model every subprocess reaches, its
    fixture under `name`."""
    env = dict(os.environ, ZFSAGA_SYSLOG="0", PYTHONDONTWRITEBYTECODE="1")
    path = tmp_path / "pool.model"
    env.update(ZFSAGA_ZFS=f"model:{path}", ZFSAGA_MODEL_POOLS=POOL)
    zfs = SharedModelZfs(path, pools=(POOL,))
    zfs.create_filesystem(f"{POOL}/{name}")
    return (kind or Pool)(zfs, f"{POOL}/{name}", tmp_path / "state", env)


@pytest.fixture(params=["model", pytest.param("real", marks=pytest.mark.realzfs)])
def pool(request, tmp_path):
    if request.param == "model":
        yield model_pool(tmp_path, "cli")
        return
    env = dict(os.environ, ZFSAGA_SYSLOG="0", PYTHONDONTWRITEBYTECODE="1")
    zfs = real_zfs()
    root = f"{POOL}/k{uuid.uuid4().hex[:10]}"
    zfs.create_filesystem(root)
    env["ZFSAGA_ZFS"] = "real"
    try:
        yield Pool(zfs, root, tmp_path / "state", env)
    finally:
        destroy_tree(root)


def test_kill_9_mid_saga_then_the_next_call_heals_it(pool: Pool) -> None:
    died = pool.revert(faults="crash@zfs:before:promote")
    assert died.returncode == 137
    assert died.stdout == ""  # stdout is for results; logs go to stderr, bound to the saga
    assert "verb=volume.revert step=promote | step promote" in died.stderr
    [orphan] = pool.sagas()
    assert orphan["status"] == "running" and orphan["liveness"].startswith("orphaned")
    assert [s["status"] for s in orphan["steps"]][:5] == ["done"] * 4 + ["started"]
    shown = pool.cli("show", orphan["id"][:10])  # a unique prefix is enough
    assert shown.returncode == 0 and "promote" in shown.stdout
    healed = pool.cli("recover")
    assert healed.returncode == 0 and "succeeded" in healed.stdout
    assert pool.sagas() == []
    [done] = pool.sagas("--all")
    assert done["status"] == "succeeded" and done["attempts"] == 2


def test_stuck_after_the_pivot_is_shown_blocks_and_resumes(pool: Pool) -> None:
    if not isinstance(pool.zfs, SharedModelZfs):
        real_more("the same operator flow runs on the model; on real ZFS, resume after a stop "
                  "at every boundary is test_crash_points_on_real_zfs")
    stuck = pool.revert(faults="fail:set_props:permanent")
    assert stuck.returncode == 6, stuck.stderr
    [row] = pool.sagas("--status", "stuck")
    blocked = pool.revert()
    assert blocked.returncode == 6 and row["id"] in blocked.stderr
    refused = pool.cli("abort", row["id"], "--reason", "try", "--yes")
    assert refused.returncode == 5 and "resume" in refused.stderr
    no_yes = pool.cli("resume", row["id"], "--reason", "fixed")
    assert no_yes.returncode == 2
    dry = pool.cli("resume", row["id"], "--reason", "fixed", "--dry-run")
    assert dry.returncode == 0 and "would run retire" in dry.stdout
    assert pool.sagas("--status", "stuck")  # the dry run changed nothing
    resumed = pool.cli("resume", row["id"], "--reason", "disk replaced", "--yes")
    assert resumed.returncode == 0 and "succeeded" in resumed.stdout
    shown = json.loads(pool.cli("--json", "show", row["id"]).stdout)
    [op] = [e for e in shown["events"] if e["type"] == "operator_resume"]
    assert op["data"]["reason"] == "disk replaced" and "uid" in op["actor"]
    assert op["status"] == "running"  # the operator's resume moved it out of stuck
    assert "journal problems" not in pool.cli("show", row["id"]).stdout


def test_stuck_compensation_is_aborted_back_to_the_before_state(pool: Pool) -> None:
    stuck = pool.revert(faults="fail:promote:permanent,fail:destroy:permanent")
    assert stuck.returncode == 6
    [row] = pool.sagas("--status", "stuck")
    aborted = pool.cli("abort", row["id"], "--reason", "undo it", "--yes")
    assert aborted.returncode == 0 and "compensated" in aborted.stdout
    assert sr_state(pool.zfs, pool.fx["sr"]) == pool.before


def test_abandon_touches_nothing_and_lists_what_is_left(pool: Pool) -> None:
    pool.revert(faults="fail:promote:permanent,fail:destroy:permanent")
    [row] = pool.sagas("--status", "stuck")
    before = sr_state(pool.zfs, pool.fx["sr"])
    out = pool.cli("--json", "abandon", row["id"], "--reason", "will clean by hand", "--yes")
    assert out.returncode == 0
    left = json.loads(out.stdout)["left_behind"]
    token = left[0].rsplit("-", 1)[1]
    # the tagged clone, and the hold (no tag names it: the hold step's probe finds it)
    assert left == [pool.fx["vdi"] + ".revert-" + token,
                    f"hold zfsaga-revert-{token} on {pool.fx['snapshot']}"]
    assert sr_state(pool.zfs, pool.fx["sr"]) == before
    assert pool.sagas() == []  # the resource is free again


def test_diagram_and_gc(pool: Pool, tmp_path) -> None:
    pool.revert(faults="fail:set_props:permanent")
    [row] = pool.sagas("--status", "stuck")
    svg = tmp_path / "plan.svg"
    out = pool.cli("diagram", row["id"], "--svg", str(svg))
    assert out.returncode == 0
    assert "flowchart TD" in out.stdout and "stateDiagram-v2" in out.stdout
    assert "6. retire PIVOT<br/>failed" in out.stdout and "class stuck here" in out.stdout
    assert svg.read_text().startswith("<svg") and "retire (pivot): failed" in svg.read_text()
    assert pool.cli("gc", "--older-than", "0").returncode == 2  # needs --yes
    pool.cli("resume", row["id"], "--reason", "ok", "--yes")
    gone = pool.cli("--json", "gc", "--older-than", "0", "--yes")
    assert json.loads(gone.stdout)["sagas"] == [row["id"]]
    assert pool.sagas("--all") == []


def test_racing_processes_serialize(pool: Pool) -> None:
    # Eight on the model, four on real ZFS (each revert is seconds in the emulated guest, and
    # the last in line waits for all the others).
    n = 8 if isinstance(pool.zfs, SharedModelZfs) else 4
    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(lambda _: pool.revert("--wait", "600", timeout=700), range(n)))
    assert [r.returncode for r in results] == [0] * n, [r.stderr[-500:] for r in results]
    assert not any("database is locked" in r.stderr for r in results)
    sagas = pool.sagas("--all")
    assert len(sagas) == n and {s["status"] for s in sagas} == {"succeeded"}
    assert pool.zfs.exists(pool.fx["vdi"] + "@s1")


def test_a_busy_resource_gives_a_clear_error(pool: Pool) -> None:
    with ResourceLock(pool.state, srs.identify(pool.zfs, pool.fx["sr"]).key).acquire(1):
        out = pool.revert("--wait", "0.5")
    assert out.returncode == 3 and "busy" in out.stderr
    assert sr_state(pool.zfs, pool.fx["sr"]) == pool.before


def test_read_only_commands_stay_lean(pool: Pool) -> None:
    pool.revert()
    probe = ("import sys, zfsaga.cli as c; c.main(sys.argv[1:]); "
             "heavy = [m for m in ('loguru', 'transitions', 'tenacity', 'libzfs_core', "
             "'zfsaga.sagas.engine', 'zfsaga.sagas.drive', 'zfsaga.sagas.progress') "
             "if m in sys.modules]; print('HEAVY', heavy)")
    for cmd in (["list", "--all"], ["show", pool.sagas("--all")[0]["id"]]):
        out = subprocess.run([sys.executable, "-c", probe, "--state-dir", str(pool.state), *cmd],
                             capture_output=True, text=True, env=pool.env)
        assert out.returncode == 0, out.stderr
        assert "HEAVY []" in out.stdout


def test_an_sr_without_state_is_not_found_not_a_traceback(pool: Pool) -> None:
    """`--sr` on a pool where zfsaga never ran: exit 4 and one line saying why; nothing made."""
    env = {k: v for k, v in pool.env.items() if k != "ZFSAGA_STATE_DIR"}
    meta = f"{POOL}/zfsaga-state"
    # An earlier real test may have made the guest pool's state dataset: set it aside.
    aside = meta + "-aside"
    if pool.zfs.exists(meta):
        subprocess.run(["zfs", "rename", meta, aside], check=True)
    try:
        out = subprocess.run([sys.executable, "-m", "zfsaga.cli", "--sr", pool.fx["sr"], "list"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 4, out.stderr
        assert "no zfsaga state on this pool" in out.stderr and "Traceback" not in out.stderr
        assert not pool.zfs.exists(meta)
    finally:
        if pool.zfs.exists(aside):
            subprocess.run(["zfs", "rename", aside, meta], check=True)
