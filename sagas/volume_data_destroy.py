"""Destroy a snapshot's data and keep its VDI as metadata only (Volume.data_destroy, for
changed block tracking): a bookmark keeps the snapshot's point in its volume's history, the
SR keeps its metadata (steps/metadata_only.py), and the snapshot goes, or, while clones need
it, is marked for ZFS to destroy with its last clone (as Volume.destroy does).

    1 bookmark  the snapshot, `<its dataset>#<uuid>`              undo: destroy it (if the
                                                                        snapshot's)
    2 keep      its metadata, a property of the SR                undo: put back what was
                                                                        there (nothing)
    3 destroy   the snapshot, or mark it deferred                 PIVOT: no undo
    4 index     (an SR with an index only) the SR's index         forward only
                forgets where the snapshot was
"""
from __future__ import annotations

from typing import Any

from zfsaga.sagas.contract import Param, Runner, Saga
from zfsaga.sagas.lookup import DESTROYED, Target, current, refuse_destroyed
from zfsaga.steps import meta, metadata_only
from zfsaga.steps.base import Step
from zfsaga.steps.bookmark import BookmarkSnapshot
from zfsaga.steps.index import INDEX_PREFIX, IndexSnapshots
from zfsaga.steps.props import SetUserProps
from zfsaga.steps.snapshot import DestroySnapshot
from zfsaga.steps.zfs import names
from zfsaga.steps.zfs.errors import InvalidName, InvalidValue
from zfsaga.steps.zfs.interface import Zfs


def resolve(zfs: Zfs, sr: str, sr_guid: str, snapshot: str) -> dict[str, Any]:
    """Under the SR's lock: the snapshot's guid and metadata, its volume's CBT enabled."""
    if "@" not in snapshot:
        raise InvalidName(snapshot, "not a snapshot: only a snapshot's data can be destroyed")
    got = zfs.get_props(snapshot, ["guid", "volsize", meta.CBT, *DESTROYED])
    refuse_destroyed(snapshot, got)
    if got[meta.CBT].value != "on":
        raise InvalidValue(snapshot, "changed block tracking is not enabled on its volume "
                                     "(Volume.enable_cbt first)")
    user = zfs.user_props(snapshot)
    if meta.KEY not in user:
        raise InvalidName(snapshot, "not a snapshot VDI of zfsaga's")
    dataset, _, snap = snapshot.partition("@")
    bookmark = names.check_bookmark(f"{dataset}#{snap}")
    guid = got["guid"].value
    prop = meta.metadata_prop(user[meta.KEY])
    record = metadata_only.encode(user, got["volsize"].value, guid, bookmark)
    record = meta.encode(record)  # InvalidValue past what one property holds
    before = zfs.get_props(sr, [prop])[prop].local
    holders = []
    if any(p.startswith(INDEX_PREFIX) for p in zfs.user_props(sr)):
        holders = [dataset]
    return {"sr": sr, "sr_guid": sr_guid, "snapshot": snapshot, "guid": guid,
            "bookmark": bookmark, "keep": {prop: record}, "before": {prop: before},
            "holders": holders}


def start(runner: Runner, sr_key: str, sr: str, sr_guid: str, snapshot: Target):
    """`snapshot`: its name, or a finder of it called under the SR's lock (sagas/lookup.py)."""
    return VolumeDataDestroy.begin(runner, sr_key,
                                   lambda: resolve(runner.zfs, sr, sr_guid, current(snapshot)))


class VolumeDataDestroy(Saga):
    KIND = "volume.data_destroy"
    VERBS = ("Volume.data_destroy",)

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        index = [IndexSnapshots("index", sr=Param("sr"), holders=Param("holders"))] \
            if params.get("holders") else []
        return [BookmarkSnapshot("bookmark", snapshot=Param("snapshot"),
                                 snapshot_guid=Param("guid"), bookmark=Param("bookmark")),
                SetUserProps("keep", dataset=Param("sr"), guid=Param("sr_guid"),
                             props=Param("keep"), before=Param("before")),
                DestroySnapshot("destroy", snapshot=Param("snapshot"), guid=Param("guid")),
                *index]
