"""Reads with no process at all (issue 20, section 3): where pyzfs is loaded already (a warm
server's child: plugin/server.py preloads it), a read-only verb reads through channel
programs, its SR's whole listing included, instead of starting a `zfs` process; a call run
in-process never loads pyzfs for a read (its import costs more than the `zfs get`).
That both ways answer alike is held on real ZFS by tests/test_zfs_layer.py."""
from __future__ import annotations

import sys
import types

import pytest


@pytest.fixture
def opened(monkeypatch) -> list[dict]:
    """What each context.zfs() asked of the backend."""
    import zfsaga.backend

    got: list[dict] = []
    monkeypatch.setattr(zfsaga.backend, "open_zfs", lambda hooks=None, **kw: got.append(kw))
    monkeypatch.delenv("ZFSAGA_READS", raising=False)
    return got


def test_reads_go_in_process_only_where_pyzfs_is_loaded_already(opened, monkeypatch) -> None:
    from zfsaga.plugin import context

    monkeypatch.delitem(sys.modules, "libzfs_core", raising=False)
    context.zfs()
    context.zfs(writes=True)
    assert "libzfs_core" not in sys.modules  # asking never loads it
    monkeypatch.setitem(sys.modules, "libzfs_core", types.ModuleType("libzfs_core"))
    context.zfs()
    context.zfs(writes=True)
    monkeypatch.setenv("ZFSAGA_READS", "cli")  # read per call: the bench measures both ways
    context.zfs()
    context.zfs(writes=True)
    assert opened == [
        {"in_process": False, "listings_in_process": False},
        {"in_process": True, "listings_in_process": False},
        {"in_process": True, "listings_in_process": True},
        {"in_process": True, "listings_in_process": True},
        {"in_process": False, "listings_in_process": False},
        {"in_process": True, "listings_in_process": False}]
