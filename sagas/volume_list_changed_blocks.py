"""Count a volume's changed blocks up to now (Volume.list_changed_blocks with the volume itself as
`key2`, as backup tools ask it). An incremental send of an open zvol fails (EBUSY), so the count
reads a temporary snapshot of it, which this saga takes and destroys. The count is its caller's
read (Saga.READ), run under the SR's lock between the two steps: never journaled, skipped by a
recovered saga (no caller waits for it any more), and a count that fails is undone like a
failed step, so no temporary snapshot outlives its call, whether it answered or not.

    1 point    a temporary snapshot of the volume, tagged        undo: destroy it (if ours)
               atomically; no key, so no VDI: SR.ls never lists it
    -- the caller's read: the changed blocks up to `point` --
    2 release  the temporary snapshot, found by its guid (a revert  forward only
               meanwhile moves it onto the retired old head)
    3 collect  the volume and its origin chain, when destroyed      forward only
               meanwhile and kept for that snapshot alone
"""
from __future__ import annotations

import uuid
from typing import Any

from zfsaga.sagas.contract import Fact, Param, Read, Runner, Saga
from zfsaga.sagas.lookup import Target, current
from zfsaga.steps.base import Step
from zfsaga.steps.snapshot import TakeSnapshot
from zfsaga.steps.temporary import CollectKept, ReleaseTemporary
from zfsaga.steps.zfs import names
from zfsaga.steps.zfs.interface import Zfs

#: The temporary snapshot's name, after `@`: an operator seeing one knows what left it.
TEMPORARY = "zfsaga-changes-"


def resolve(zfs: Zfs, sr: str, sr_guid: str, volume: str) -> dict[str, Any]:
    """Under the SR's lock: the temporary snapshot's name (a new one each call), and the
    volume with its origin chain, which a release set aside may be the last to free."""
    from zfsaga.sagas.volume_destroy import origin_chain

    target = names.check_snapshot(f"{volume}@{TEMPORARY}{uuid.uuid4().hex[:12]}")
    guid = zfs.get_props(volume, ["guid"])["guid"].value
    return {"sr": sr, "sr_guid": sr_guid, "target": target,
            "candidates": [[volume, guid], *origin_chain(zfs, volume)]}


def start(runner: Runner, sr_key: str, sr: str, sr_guid: str, volume: Target, read: Read):
    """`volume`: its name, or a finder of it called under the SR's lock (sagas/lookup.py: the
    caller's checks of both points run there). `read` is handed the steps' facts; the
    temporary snapshot is `facts["point"]["name"]`."""
    return VolumeListChangedBlocks.begin(
        runner, sr_key, lambda: resolve(runner.zfs, sr, sr_guid, current(volume)), read=read)


class VolumeListChangedBlocks(Saga):
    KIND = "volume.list_changed_blocks"
    VERBS = ("Volume.list_changed_blocks",)
    READ = "point"
    #: The caller's answer holds once the point is read: a release that fails after it is
    #: cleanup, finished by the SR's next saga (the verb answers the bitmap).
    EFFECT = "point"

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        return [TakeSnapshot("point", target=Param("target")),
                ReleaseTemporary("release", snapshot=Fact("point", "name"),
                                 guid=Fact("point", "guid")),
                CollectKept("collect", candidates=Param("candidates"))]
