"""Shared fixtures: the `zfs` fixture runs a test on the in-memory model and, marked realzfs,
on real ZFS (in the guest, or on a host with /dev/zfs), each test under a fresh root dataset."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from zfsaga.steps.zfs.model import ModelZfs

POOL = os.environ.get("ZFSAGA_TEST_POOL", "zfsagatest")
#: How many random sequences the differential test compared, for the run's summary.
DIFF_KEY = pytest.StashKey[int]()
#: The crash harness's one-line summaries, for the run's summary.
CRASH_KEY = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    compared = config.stash.get(DIFF_KEY, None)
    if compared is not None:
        terminalreporter.write_line(
            f"differential test: {compared} random sequences compared on the model and real ZFS")
    for line in config.stash.get(CRASH_KEY, []):
        terminalreporter.write_line(line)


def summary_line(request: pytest.FixtureRequest, line: str) -> None:
    """A figure the run's summary shows at its end (pytest keeps a passing test's prints to
    itself): the crash harnesses' counts, the CBT timings, the backup rounds."""
    request.config.stash.setdefault(CRASH_KEY, []).append(line)
    print(line)


def real_more(what: str) -> None:
    """Skip a real-ZFS test that CI's hour leaves to `make realzfs-more` (ZFSAGA_REAL_MORE=1):
    `what` says where CI proves the same thing instead."""
    if not os.environ.get("ZFSAGA_REAL_MORE"):
        pytest.skip(f"on real ZFS with ZFSAGA_REAL_MORE=1 (make realzfs-more): {what}")


def real_zfs(in_process: bool = False):
    """A RealZfs, or a clear error: a real-ZFS test never skips silently."""
    from zfsaga.steps.zfs.real import RealZfs

    if not os.path.exists("/dev/zfs"):
        pytest.fail("realzfs tests need /dev/zfs: run them through the guest "
                    "(make test, or python -m zfsaga.guest -- pytest -m realzfs)")
    return RealZfs(in_process=in_process)


def destroy_tree(root: str) -> None:
    """Test clean-up only: remove a test's whole root, whatever is left in it."""
    subprocess.run(["zfs", "destroy", "-r", "-R", "-f", root], capture_output=True, check=False)


@pytest.fixture(scope="session")
def destdir(tmp_path_factory):
    """`make install` into a scratch tree, once per run: the tree the plugin's tests call as
    xapi-storage-script would (never changed by a test). Its PREFIX is the scratch tree's own
    usr/, so the systemd units it lays name real paths; and, unless ZFSAGA_TEST_ENTRY=fallback,
    its warm server runs as systemd would start it (tests/entry_server.py), so the entry
    points' tests go through the server, or, in the fallback run, through no server at all."""
    from tests.entry_server import install_tree, started_server

    dest = install_tree(tmp_path_factory.mktemp("destdir"))
    with started_server(dest, tmp_path_factory.mktemp("run")):
        yield dest


@pytest.fixture(params=["model", pytest.param("real", marks=pytest.mark.realzfs)])
def zfs(request):
    """(backend, root): a ZFS backend and an empty filesystem to work under."""
    yield from zfs_backend(request.param)


def zfs_backend(kind: str):
    """The `zfs` fixture's body, for "model", "real" or "real-in-process": the real backend as
    a mutating verb opens it, reads and user-property writes through channel programs
    (steps/zfs/channel.py). The layer's contract runs on all three (tests/test_zfs_layer.py);
    the engine's tests need not: every real plugin test drives its sagas in-process."""
    root = f"{POOL}/t{uuid.uuid4().hex[:10]}"
    if kind == "model":
        backend = ModelZfs(pools=(POOL,))
        backend.create_filesystem(root)
        yield backend, root
        return
    backend = real_zfs(in_process=kind == "real-in-process")
    backend.create_filesystem(root)
    try:
        yield backend, root
    finally:
        destroy_tree(root)
