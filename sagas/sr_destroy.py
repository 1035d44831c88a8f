"""Give an SR back (SR.destroy): xapi has destroyed its VDIs first, so what zfsaga still keeps
there are retired volumes nothing lists; they are collected, then the SR's marks are removed.
The pool or filesystem itself stays: zfsaga did not make it (SR.create took an existing one),
and nothing zfsaga did not make is touched.

    1 collect   every retired volume of the SR, newest first (a clone   forward only
                goes before the volume it was cloned from)
    2 unmark    give the dataset back as SR.create found it: each       undo: put them back
                native property SR.create changed back to the value
                it recorded on the dataset (org.zfsaga:before:<prop>:
                local again, or inherited again), and every zfsaga
                mark removed (the SR's, its name, description, uuid,
                provisioning, block size, the records themselves)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zfsaga.steps import srs
from zfsaga.steps.base import RETIRED
from zfsaga.steps.collect import CollectRetired
from zfsaga.steps.props import SetUserProps
from zfsaga.steps.zfs.interface import Zfs

if TYPE_CHECKING:
    from zfsaga.sagas.engine import Engine

KIND = "sr.destroy"
VERSION = 1
#: The SR ends here: every saga set aside from it (sagas/engine.py) is finished first, or
#: blocks it (what its cleanup holds would outlive the SR).
DRAINS = True


def resolve(zfs: Zfs, sr: str, sr_guid: str) -> dict[str, Any]:
    tree = zfs.list_tree(sr, ["guid", "createtxg", "type", RETIRED])
    retired = sorted(((int(p["createtxg"].value), name, p["guid"].value)
                      for name, p in tree.items()
                      if p["type"].value == "volume" and p[RETIRED].local is not None),
                     reverse=True)
    user = zfs.user_props(sr)
    props = srs.restoring(user)
    now = zfs.get_props(sr, [p for p in props if p in srs.RESTORED_NATIVE] or ["guid"])
    before = {p: user.get(p) if p in user else now[p].local for p in props}
    # The journal's witness is written after this read, before step 1 (the engine): the SR's
    # first witnessed saga may be this one, and the mark must go with the others.
    props[srs.JOURNAL_GEN], before[srs.JOURNAL_GEN] = None, user.get(srs.JOURNAL_GEN)
    return {"sr": sr, "sr_guid": sr_guid, "candidates": [[n, g] for _, n, g in retired],
            "props": props, "before": before}


def start(engine: "Engine", sr_key: str, sr: str, sr_guid: str):
    return engine.run(KIND, sr_key, lambda: resolve(engine.zfs, sr, sr_guid))


def plan(params: dict[str, Any]) -> list:
    return [CollectRetired("collect", candidates="$candidates"),
            SetUserProps("unmark", dataset="$sr", guid="$sr_guid", props="$props",
                         before="$before")]
