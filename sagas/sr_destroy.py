"""Give an SR back (SR.destroy): xapi has destroyed its VDIs first, so what zfsaga still keeps
there are retired volumes nothing lists; they are collected, then the SR's marks are removed.
The pool or filesystem itself stays: zfsaga did not make it (SR.create took an existing one),
and nothing zfsaga did not make is touched. SR.destroy of a pool zfsaga made destroys the pool
instead (sagas/pool_destroy.py): `give_back` chooses.

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

from dataclasses import dataclass
from typing import Any, Callable

from zfsaga.sagas.contract import Param, Runner, Saga
from zfsaga.steps import srs
from zfsaga.steps.base import RETIRED, Step
from zfsaga.steps.collect import CollectRetired
from zfsaga.steps.props import SetUserProps
from zfsaga.steps.zfs.interface import Zfs



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


def start(runner: Runner, sr_key: str, sr: str, sr_guid: str):
    return SrDestroy.begin(runner, sr_key, lambda: resolve(runner.zfs, sr, sr_guid))


@dataclass(frozen=True)
class Runners:
    """The two journals SR.destroy may run through, each opened only once chosen: the SR's
    own (the SR given back) and the host's (its pool destroyed)."""

    sr: Callable[[], Runner]
    host: Callable[[], Runner]


def give_back(runners: Runners, sr_key: str, sr: str, sr_guid: str,
              made_pool: tuple[str, str] | None) -> Any:
    """SR.destroy, whichever saga it takes. `made_pool`: (its pool guid, its made-pool mark)
    when the SR is a pool zfsaga made that holds nothing but this SR's own (the caller checked,
    plugin/pools.py made_pool_alone): the pool is destroyed (sagas/pool_destroy.py, on the
    host's journal: the SR's goes with the pool). Otherwise the SR is given back, the dataset
    staying (this module's saga, on the SR's journal)."""
    if made_pool is not None:
        from zfsaga.sagas import pool_destroy

        pool_guid, made = made_pool
        return pool_destroy.start(runners.host(), sr, pool_guid, made)
    return start(runners.sr(), sr_key, sr, sr_guid)


class SrDestroy(Saga):
    KIND = "sr.destroy"
    VERBS = ("SR.destroy",)
    #: The SR ends here: every saga set aside from it (sagas/recovery.py) is finished first, or
    #: blocks it (what its cleanup holds would outlive the SR).
    DRAINS = True

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        return [CollectRetired("collect", candidates=Param("candidates")),
                SetUserProps("unmark", dataset=Param("sr"), guid=Param("sr_guid"),
                             props=Param("props"), before=Param("before"))]
