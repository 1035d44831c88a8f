"""Revert a VDI to any of its snapshots, keeping every other snapshot (ZFS rollback only reaches
the latest one). The recipe, as the design card puts it: clone the snapshot, swap the clone in
under the VDI's name, promote it; if promote fails, the clone is rolled back.

    1 hold      the snapshot, so it cannot vanish mid-way          undo: release
    2 clone     the snapshot to <vdi>.revert-<token>, born with     undo: destroy the clone
                the VDI's own user properties (thin: see 6b)
    3 aside     rename the VDI to <vdi>.old-<token>                undo: rename back
    4 swap_in   rename the clone to the VDI's name                 undo: rename back
    5 promote   the clone takes the snapshots; the old head        undo: promote the old head
                becomes a clone of them                                  back
    6 retire    destroy the old head, or keep it retired if its    PIVOT: no undo
                newer snapshots still need it (then unreserved)
    6b reserve  a thick VDI's new head: its whole size, now that   forward only
                the old head's reservation is released (reserved
                at birth, a revert would need a second full copy)
    7 release   the hold                                           forward only
    8 collect   the retired head the snapshot came from, if the    forward only
                promote left it empty
    9 index     the SR's index of where this VDI's snapshots live  forward only
                (a VDI the plugin keyed only)

The snapshot may live on the VDI itself or on one of its retired heads (`<vdi>.old-<token>`,
where an earlier revert left the snapshots newer than its target): any snapshot, any number of
reverts. Promote then swaps the clone with that holder, not with the old head.
"""
from __future__ import annotations

import uuid
from typing import Any

from zfsaga.sagas.contract import Fact, Param, Runner, Saga
from zfsaga.sagas.lookup import DESTROYED, Target, current, refuse_destroyed
from zfsaga.steps import srs
from zfsaga.steps.zfs import names
from zfsaga.steps.base import OWNER, RETIRED, Step, exists, guid_of
from zfsaga.steps.clone import CloneSnapshot
from zfsaga.steps.collect import CollectRetired
from zfsaga.steps.zfs.errors import InvalidName, NotFound
from zfsaga.steps.holds import HoldSnapshot, ReleaseHold
from zfsaga.steps.index import IndexSnapshots
from zfsaga.steps.meta import KEY
from zfsaga.steps.promote import PromoteClone
from zfsaga.steps.rename import RenameDataset
from zfsaga.steps.reserve import ReserveVolume
from zfsaga.steps.retire import RetireDataset
from zfsaga.steps.zfs.interface import Zfs



def check(sr: str, vdi: str, snapshot: str) -> None:
    """Validate the request's names before anything else (no ZFS call)."""
    names.check_inside(sr, vdi)
    names.check_snapshot(snapshot)
    holder = names.dataset_of(snapshot)
    if holder != vdi and not holder.startswith(vdi + ".old-"):
        raise InvalidName(snapshot, f"not a snapshot of {vdi} nor of one of its retired heads")


def derived_names(vdi: str, token: str) -> dict[str, str]:
    """The temporary names a revert uses, each checked now: a name that only fails at the
    clone would strand the saga (its undo could not even look the name up)."""
    derived = {"fresh": f"{vdi}.revert-{token}", "aside": f"{vdi}.old-{token}",
               "hold_tag": f"zfsaga-revert-{token}"}
    for key, name in derived.items():
        try:
            names.check_component(name, "hold tag") if key == "hold_tag" \
                else names.check_dataset(name)
        except InvalidName:
            raise InvalidName(vdi, f"the name is too long to revert: the temporary dataset "
                                   f"{name!r} would exceed ZFS's name limits") from None
    return derived


def resolve(zfs: Zfs, sr: str, vdi: str, snapshot: str, sr_guid: str,
            token: str | None = None) -> dict[str, Any]:
    """Resolve every input once, under the lock, before step 1. `token` names the temporary
    datasets (random unless a test fixes it)."""
    check(sr, vdi, snapshot)
    derived = derived_names(vdi, token or uuid.uuid4().hex[:8])
    head = srs.vdi_props(zfs, sr, vdi, ["guid", "refreservation", *DESTROYED])
    # A destroyed VDI kept retired for its snapshots is no VDI: its new head, born without
    # the mark, would bring it back.
    refuse_destroyed(vdi, head)
    if not exists(zfs, snapshot):
        raise NotFound(snapshot, "no such snapshot")
    snap = zfs.get_props(snapshot, ["guid", KEY, *DESTROYED])
    refuse_destroyed(snapshot, snap)
    # The new head replaces the VDI: it must carry the VDI's metadata (name, description, keys:
    # local user properties) and stay thick if it was; zfsaga's own bookkeeping stays behind.
    carried = {k: v for k, v in zfs.user_props(vdi).items() if k not in (OWNER, RETIRED)}
    owner = (snap[KEY].local or "").partition("@")[0]
    if KEY in carried and owner and owner != carried[KEY]:
        raise InvalidName(snapshot, f"a snapshot of the VDI keyed {owner}, not of {vdi}")
    holder = names.dataset_of(snapshot)
    # The promote swaps the clone with the dataset holding the snapshot: the old head itself
    # (by then renamed aside), or a retired head of an earlier revert, which the promote may
    # empty (then collected).
    origin = derived["aside"] if holder == vdi else holder
    retired = [] if holder == vdi else [[holder, guid_of(zfs, holder)]]
    return {"sr": sr, "sr_guid": sr_guid, "vdi": vdi, "snapshot": snapshot,
            "vdi_guid": head["guid"].value, "snapshot_guid": snap["guid"].value,
            "vdi_props": carried,
            "thick": head["refreservation"].value not in (None, "0"), "origin": origin,
            "retired_holder": retired, "indexed": KEY in carried,
            "holders": [vdi, derived["aside"], *([holder] if holder != vdi else [])],
            **derived}


def start(runner: Runner, sr: str, vdi: Target, snapshot: Target,
          token: str | None = None):
    """Run a revert through `runner` (the engine): check, lock the SR (by guid), resolve, drive. The
    revert changes the dataset graph (promote moves snapshots between datasets): SR-wide.
    `vdi`, `snapshot`: names, or finders of where each is now, called under the lock in that
    order (sagas/lookup.py): a VDI destroyed meanwhile is not brought back."""
    if not callable(vdi) and not callable(snapshot):
        check(sr, vdi, snapshot)
    ident = srs.identify(runner.zfs, sr)
    return VolumeRevert.begin(runner, ident.key,
                              lambda: resolve(runner.zfs, sr, current(vdi), current(snapshot),
                                              ident.guid, token))


class VolumeRevert(Saga):
    KIND = "volume.revert"
    #: The kind older versions journaled it under: a stuck revert of theirs resumes.
    ALIASES = ("vdi.revert",)
    VERBS = ("Volume.revert", "zfsaga revert")
    #: Once the promote is done the VDI holds the snapshot's data: what xapi asked for. A failure
    #: after it (retiring the old head, the reserve, the release) is cleanup; the verb succeeds.
    EFFECT = "promote"
    #: Still 1 with the reserve step: a recorded plan runs as it was frozen (every step type it
    #: names is still here), so a revert begun by the previous zfsaga resumes unparked.
    VERSION = 1

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        return [
            HoldSnapshot("hold", snapshot_guid=Param("snapshot_guid"),
                         snapshot=Param("snapshot"), tag=Param("hold_tag")),
            CloneSnapshot("clone", snapshot_guid=Param("snapshot_guid"),
                          snapshot=Param("snapshot"), target=Param("fresh"),
                          props=Param("vdi_props")),
            RenameDataset("aside", source=Param("vdi"), target=Param("aside"),
                          guid=Param("vdi_guid")),
            RenameDataset("swap_in", source=Param("fresh"), target=Param("vdi"),
                          guid=Fact("clone", "guid")),
            PromoteClone("promote", clone=Param("vdi"), old=Param("origin")),
            RetireDataset("retire", dataset=Param("aside"), guid=Param("vdi_guid")),
            *([ReserveVolume("reserve", dataset=Param("vdi"), guid=Fact("clone", "guid"))]
              if params.get("thick") else []),
            ReleaseHold("release", snapshot_guid=Param("snapshot_guid"),
                        snapshot=Param("snapshot"), tag=Param("hold_tag")),
            CollectRetired("collect", candidates=Param("retired_holder")),
            # Only a VDI the plugin keyed has snapshots to index (an operator's revert of another
            # dataset skips the reads it would cost).
            *([IndexSnapshots("index", sr=Param("sr"), holders=Param("holders"))]
              if params.get("indexed", True) else []),
        ]
