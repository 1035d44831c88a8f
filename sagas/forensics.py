"""What a saga left in ZFS, for an operator closing it by hand or a journal that lost records:
the datasets a saga tagged, the effect of each step it began (a hold, a dataset renamed aside,
a promote), and the tags and holds of sagas the journal has no record of. Read only: zfsaga
reports these and never destroys them on its own (one may be a VDI's current head: a revert's
clone becomes the VDI)."""
from __future__ import annotations

from typing import Callable

from zfsaga.sagas.progress import load, plan_known
from zfsaga.state.journal import Journal, SagaRow
from zfsaga.steps.base import OWNER
from zfsaga.steps.zfs.errors import ZfsError
from zfsaga.steps.zfs.interface import Zfs


def tagged_by(zfs: Zfs, row: SagaRow) -> list[str]:
    """Datasets and snapshots under the saga's SR that carry its ownership tag."""
    root = row.params.get("sr", row.resource)
    if "pool" in row.params and "sr" not in row.params:
        return []  # a pool saga (host journal): its pool is named in its steps' effects
    return [name for name, props in zfs.list_tree(root, [OWNER]).items()
            if (props[OWNER].local or "").startswith(row.id + "/")]


def left_behind(zfs: Zfs, journal: Journal, row: SagaRow,
                boundary: Callable[[str], None]) -> list[str]:
    """Everything the saga's effects left in ZFS: the datasets it tagged, and the effect of
    every step it began that is still in place, as each step's probe sees it."""
    left = tagged_by(zfs, row)
    if not plan_known(row):
        return left
    saga = load(row, journal, zfs, boundary)
    for step in saga.steps:
        if step.name not in saga.last or saga.last[step.name] == "comp_done":
            continue
        try:
            effect = step.effect(saga.ctx)
        except ZfsError as exc:
            effect = f"{step.name}: cannot tell ({type(exc).__name__}: {exc})"
        if effect is not None and effect not in left:
            left.append(effect)
    return left


def strangers(zfs: Zfs, journal: Journal, sr: str) -> dict[str, str]:
    """Datasets under `sr` tagged by a saga this journal has no record of (its journal was
    lost or cut back): dataset -> saga id."""
    out = {}
    for name, props in zfs.list_tree(sr, [OWNER]).items():
        tag = props[OWNER].local
        if tag and not journal.knows(tag.split("/", 1)[0]):
            out[name] = tag.split("/", 1)[0]
    return out


def left_by_lost_sagas(zfs: Zfs, sr: str,
                       journal: Journal | None) -> tuple[dict[str, str], list[str]]:
    """What zfsaga's tags say sagas this journal has no record of left under the SR: every
    dataset and snapshot tagged by one (name -> saga id; all tagged ones when there is no
    journal to ask), and every zfsaga hold on a snapshot that no active saga of the journal
    names (`hold TAG on SNAPSHOT`)."""
    known: set[str] = set()
    if journal is not None:
        known = {r.params.get("hold_tag") for r in journal.active()} - {None}
    tagged, holds = {}, []
    for name, props in zfs.list_tree(sr, [OWNER]).items():
        tag = props[OWNER].local
        if tag and (journal is None or not journal.knows(tag.split("/", 1)[0])):
            tagged[name] = tag.split("/", 1)[0]
        if "@" in name:
            holds += [f"hold {t} on {name}" for t in sorted(zfs.holds(name))
                      if t.startswith("zfsaga-") and t not in known]
    return tagged, holds
