"""Every step type a recorded plan may name. A plan naming a step (or version) not listed here
is a plan this code does not know: it is never resumed automatically."""
from __future__ import annotations

from typing import Any

from zfsaga.steps.base import Step
from zfsaga.steps.bookmark import BookmarkSnapshot, DestroyBookmark
from zfsaga.steps.clone import CloneSnapshot
from zfsaga.steps.create import CreateVolume
from zfsaga.steps.holds import HoldSnapshot, ReleaseHold
from zfsaga.steps.index import IndexSnapshots
from zfsaga.steps.pools import CreatePool, DestroyPool, ExportPool, ImportPool
from zfsaga.steps.promote import PromoteClone
from zfsaga.steps.props import SetUserProps
from zfsaga.steps.collect import CollectRetired
from zfsaga.steps.reserve import ReserveVolume
from zfsaga.steps.resize import GrowVolume
from zfsaga.steps.snapshot import DestroySnapshot, ReleaseSnapshot, TakeSnapshot
from zfsaga.steps.rename import RenameDataset
from zfsaga.steps.retire import RetireDataset
from zfsaga.steps.temporary import CollectKept, ReleaseTemporary

STEP_TYPES: dict[str, type[Step]] = {cls.__name__: cls for cls in (
    HoldSnapshot, CloneSnapshot, RenameDataset, PromoteClone, RetireDataset, ReleaseHold,
    CreateVolume, SetUserProps, GrowVolume, TakeSnapshot, DestroySnapshot, ReleaseSnapshot,
    CollectRetired, IndexSnapshots, CreatePool, ImportPool, ExportPool, DestroyPool, ReserveVolume,
    BookmarkSnapshot, DestroyBookmark, ReleaseTemporary, CollectKept)}


class UnknownPlan(ValueError):
    """The recorded plan names a step type or version this code does not have."""


def rebuild(plan: list[dict[str, Any]]) -> list[Step]:
    """The steps of a recorded plan, exactly as frozen (kind and version must match)."""
    steps = []
    for entry in plan:
        cls = STEP_TYPES.get(entry.get("step", ""))
        if cls is None or cls.version != entry.get("version") or cls.kind != entry.get("kind"):
            raise UnknownPlan(f"step {entry.get('name')!r}: {entry.get('step')} "
                              f"v{entry.get('version')} is not known to this zfsaga")
        steps.append(cls(entry["name"], **entry.get("args", {})))
    return steps
