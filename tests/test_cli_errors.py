"""`zfsaga`'s answers at its edges: a host with no pool saga yet lists nothing (exit 0); with
--json every error, a usage error included, is one JSON object on stderr (stdout keeps only
results); a negative age for gc is refused."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "ZFSAGA_HOST_STATE_DIR": str(tmp / "host")}
    return subprocess.run([sys.executable, "-m", "zfsaga.cli", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_a_host_with_no_pool_saga_yet_lists_nothing(tmp_path: Path) -> None:
    out = cli(tmp_path, "--host", "list")
    assert out.returncode == 0 and "(no active sagas)" in out.stdout, out
    out = cli(tmp_path, "--host", "--json", "list", "--all")
    assert out.returncode == 0 and json.loads(out.stdout) == [], out
    out = cli(tmp_path, "--host", "show", "0123")  # a saga it has not: still not found
    assert out.returncode == 4


@pytest.mark.parametrize("args, code", [
    (["--host", "show", "0123"], 4),                               # not found
    (["--state-dir", "{tmp}/none", "list"], 4),                    # no journal there
    (["list"], 2),                                                 # no SR named
    (["--host", "list", "--status", "stuk"], 2),                   # argparse's own
    (["--host", "gc", "--older-than", "-1", "--dry-run"], 2),      # a negative age
    (["--host", "gc", "--older-than", "nan", "--dry-run"], 2),
    (["--host", "frobnicate"], 2),
])
def test_with_json_every_error_is_a_json_object_on_stderr(tmp_path: Path, args: list[str],
                                                          code: int) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = cli(tmp_path, "--json", *args)
    assert out.returncode == code, out
    assert out.stdout == ""
    doc = json.loads(out.stderr)
    assert doc["error"]["exit_code"] == code and doc["error"]["message"], doc
    plain = cli(tmp_path, *args)  # without --json: the same exit, in words
    assert plain.returncode == code and plain.stderr.startswith(("zfsaga", "usage"))


def test_gc_refuses_a_negative_age(tmp_path: Path) -> None:
    from zfsaga.state.journal import Journal

    (tmp_path / "host").mkdir()
    Journal(tmp_path / "host" / "journal.db").close()  # a host journal, so gc would run
    out = cli(tmp_path, "--host", "gc", "--older-than", "-1", "--yes")
    assert out.returncode == 2 and "--older-than" in out.stderr, out
    assert cli(tmp_path, "--host", "gc", "--older-than", "0", "--dry-run").returncode == 0
