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


def _listing(order: int) -> dict:
    """An SR's tree as a read answers it, in one of two orders: `zfs get -r` prints ZFS's walk,
    a channel program's answer comes in the order of a Lua table (the kernel's hash order),
    objects and user properties alike."""
    from zfsaga.steps import meta
    from zfsaga.steps.zfs.primitives import Prop

    def native(kind: str) -> dict:
        return {"type": Prop(kind, "none"), "volsize": Prop("1048576", "local"),
                "refreservation": Prop("0", "default"), "referenced": Prop("8192", "none"),
                "defer_destroy": Prop("off" if kind == "snapshot" else None, "none")}

    sr = "tank/sr"
    tree = {sr: ({"type": Prop("filesystem", "none")}, {})}
    for key in ("b-vol", "a-vol", "c-vol", "a-vol@s1", "c-vol@s0"):
        user = {meta.KEY: key, meta.NAME: key.upper(), meta.key_prop("vdi-type"): "user",
                meta.key_prop("Zeta"): "z", meta.key_prop("alpha"): "a"}
        if order:
            user = dict(reversed(list(user.items())))
        tree[f"{sr}/{key}"] = (native("snapshot" if "@" in key else "volume"), user)
    return dict(reversed(list(tree.items()))) if order else tree


def test_sr_ls_answers_the_same_bytes_whatever_order_the_read_came_in(monkeypatch) -> None:
    """Served, SR.ls reads through a channel program; in-process, through `zfs get -r`: the
    same objects in another order. xapi's answer must not depend on it: the same bytes both
    ways (the VDIs by key, each VDI's keys by name), so a served call answers exactly as the
    in-process one."""
    import json

    from zfsaga.plugin import context, sr as sr_verbs

    answers = []
    for order in (0, 1):
        tree = _listing(order)
        monkeypatch.setattr(context, "open_sr_tree",
                            lambda sr, tree=tree: (context.Sr(None, sr, "1"), tree))
        answers.append(json.dumps(sr_verbs.ls("t", "tank/sr")))
    assert answers[0] == answers[1]
    listed = json.loads(answers[0])
    assert [v["key"] for v in listed] == ["a-vol", "a-vol@s1", "b-vol", "c-vol", "c-vol@s0"]
    assert list(listed[0]["keys"]) == ["Zeta", "alpha", "vdi-type"]
