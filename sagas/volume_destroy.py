"""Destroy a volume or a snapshot (Volume.destroy), in any order, never losing what others
still need, and collecting what nothing needs any more:

    volume:   1 retire    destroyed, or kept retired (hidden from     PIVOT: no undo
                          SR.ls) while its snapshots or clones live
              2 collect   retired datasets of its origin chain that   forward only
                          nothing needs now
    snapshot: 1 destroy   destroyed, or marked for ZFS to destroy     PIVOT: no undo
                          with its last clone (deferred)
              2 collect   its volume, if retired and now empty, and   forward only
                          that volume's origin chain
              3 index     (an SR with an index only) the SR's index    forward only
                          forgets what a revert had
                          left away from home on what is now gone
                          (steps/index.py)
    metadata-only (Volume.data_destroy made it; named `<sr>/<volume key>#<uuid>`):
              1 forget    its metadata, a property of the SR           undo: put it back
              2 destroy   its bookmark, wherever a promote moved it    PIVOT: no undo
              3 collect   the retired head that held the bookmark,     forward only
                          if now empty, and its origin chain
"""
from __future__ import annotations

from typing import Any

from zfsaga.sagas.contract import Param, Runner, Saga
from zfsaga.sagas.lookup import DESTROYED, Target, current, refuse_destroyed
from zfsaga.steps.zfs import names
from zfsaga.steps.bookmark import DestroyBookmark
from zfsaga.steps.collect import CollectRetired
from zfsaga.steps.props import SetUserProps
from zfsaga.steps.index import INDEX_PREFIX, IndexSnapshots
from zfsaga.steps.retire import RetireDataset
from zfsaga.steps.snapshot import DestroySnapshot
from zfsaga.steps.base import Step
from zfsaga.steps.zfs.interface import Zfs

MAX_CHAIN = 256  # clones of clones: far deeper than any SR grows, and never an endless loop


def origin_chain(zfs: Zfs, dataset: str) -> list[list[str]]:
    """[name, guid] of each dataset up the chain of origins of `dataset`, nearest first."""
    chain: list[list[str]] = []
    origin = zfs.get_props(dataset, ["origin"])["origin"].value
    while origin and len(chain) < MAX_CHAIN:
        parent = names.dataset_of(origin)
        got = zfs.get_props(parent, ["guid", "origin"])
        chain.append([parent, got["guid"].value])
        origin = got["origin"].value
    return chain


def find_bookmark(zfs: Zfs, sr: str, guid: str, hint: str) -> str | None:
    """Where the bookmark with this guid is now: at `hint` (where it was made), or on a head
    of the same volume a revert set aside (a promote leaves the bookmarks newer than the
    clone's origin on the old head), or on the new head (it takes the older ones)."""
    home = hint.split("#")[0]
    base = home.split(".old-")[0]
    tried = [home] if zfs.exists(home) else []
    tried += [name for name in zfs.list_tree(sr, ["type"]) if name != home
              and (name == base or name.startswith(base + ".old-"))]
    for dataset in tried:
        for name, got in zfs.bookmarks(dataset).items():
            if got["guid"] == guid:
                return name
    return None


def resolve_metadata_only(zfs: Zfs, sr: str, sr_guid: str, target: str) -> dict[str, Any]:
    """A metadata-only VDI, `<sr>/<volume key>#<uuid>`: its record on the SR and its bookmark."""
    from zfsaga.steps import meta, metadata_only
    from zfsaga.steps.zfs.errors import NotFound

    key = target[len(sr) + 1:].replace("#", "@", 1)
    prop = meta.metadata_prop(key)
    stored = zfs.get_props(sr, [prop])[prop].local
    record = metadata_only.decode(stored) if stored is not None else None
    if record is None:
        raise NotFound(target, "no metadata-only VDI of that key")
    guid = str(record.get("guid", ""))
    bookmark = find_bookmark(zfs, sr, guid, str(record.get("bookmark") or target))
    holder = (bookmark or target).split("#")[0]
    candidates = []
    if zfs.exists(holder):
        candidates = [[holder, zfs.get_props(holder, ["guid"])["guid"].value],
                      *origin_chain(zfs, holder)]
    return {"sr": sr, "sr_guid": sr_guid, "target": target, "metadata_only": True,
            "forget": {prop: None}, "before": {prop: stored},
            "bookmark": bookmark or names.check_bookmark(target), "guid": guid,
            "candidates": candidates}


def resolve(zfs: Zfs, sr: str, sr_guid: str, target: str) -> dict[str, Any]:
    if "#" in target:
        return resolve_metadata_only(zfs, sr, sr_guid, target)
    got = zfs.get_props(target, ["guid", *DESTROYED])
    refuse_destroyed(target, got)  # destroyed once already: a second destroy is no VDI's
    guid = got["guid"].value
    params = {"sr": sr, "sr_guid": sr_guid, "target": target, "guid": guid,
              "snapshot": "@" in target}
    if params["snapshot"]:
        volume = names.dataset_of(target)
        volume_guid = zfs.get_props(volume, ["guid"])["guid"].value
        params["candidates"] = [[volume, volume_guid], *origin_chain(zfs, volume)]
    else:
        params["candidates"] = origin_chain(zfs, target)
    own = [] if params["snapshot"] else [target]
    # Only an SR with snapshots away from home (a revert left some) has an index to keep: the
    # SR's lock, held from here to the end, keeps any revert from adding one meanwhile.
    indexed = any(p.startswith(INDEX_PREFIX) for p in zfs.user_props(sr))
    params["holders"] = own + [name for name, _ in params["candidates"]] if indexed else []
    return params


def start(runner: Runner, sr_key: str, sr: str, sr_guid: str, target: Target):
    return VolumeDestroy.begin(runner, sr_key,
                               lambda: resolve(runner.zfs, sr, sr_guid, current(target)))


class VolumeDestroy(Saga):
    KIND = "volume.destroy"
    VERBS = ("Volume.destroy",)

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        if params.get("metadata_only"):
            return [SetUserProps("forget", dataset=Param("sr"), guid=Param("sr_guid"),
                                 props=Param("forget"), before=Param("before")),
                    DestroyBookmark("destroy", bookmark=Param("bookmark"), guid=Param("guid")),
                    CollectRetired("collect", candidates=Param("candidates"))]
        if params.get("snapshot"):
            first = DestroySnapshot("destroy", snapshot=Param("target"), guid=Param("guid"))
        else:
            first = RetireDataset("retire", dataset=Param("target"), guid=Param("guid"))
        index = [IndexSnapshots("index", sr=Param("sr"), holders=Param("holders"))] if params.get(
            "holders", [None]) else []
        return [first, CollectRetired("collect", candidates=Param("candidates")), *index]
