"""Clone a snapshot or a writable volume (Volume.clone) into a new volume `<sr>/<key>`, born
with its key and the source's name and description, thick if the SR is. A writable volume
(vm-clone, templates, clone-on-boot) is cloned through a hidden base snapshot that is marked
for deferred destroy at once, so ZFS destroys it with its last clone.

A thick clone that cannot fit in the SR's free space is refused before anything is recorded;
one that stops fitting mid-saga (the base snapshot of a thick volume holds its written data)
fails its clone step with NoSpace and compensates.

    from a snapshot:  1 clone         the snapshot, by guid            undo: destroy the clone
    from a volume:    1 base          a hidden snapshot of the volume  undo: destroy it
                      2 clone         the base snapshot                undo: destroy the clone
                      3 release_base  deferred destroy of the base     forward only
"""
from __future__ import annotations

import uuid as uuidlib
from typing import Any

from zfsaga.sagas.contract import Fact, Param, Runner, Saga
from zfsaga.sagas.lookup import Target, current, refuse_retired
from zfsaga.steps import meta, srs
from zfsaga.steps.base import Step, guid_of
from zfsaga.steps.clone import CloneSnapshot
from zfsaga.steps.snapshot import ReleaseSnapshot, TakeSnapshot
from zfsaga.steps.zfs.interface import Zfs

BASE = "org.zfsaga:clone-base"  # marks a hidden base snapshot (never listed)


def resolve(zfs: Zfs, sr: str, sr_guid: str, source: str, thick: bool,
            key: str | None = None) -> dict[str, Any]:
    key = key or str(uuidlib.uuid4())
    user = zfs.user_props(source)
    refuse_retired(source, user)  # a destroyed volume its snapshots still need
    if thick:
        size = zfs.get_props(source, ["volsize"])["volsize"].value
        srs.check_fits(zfs, sr, int(size or 0), "the clone")
    props = {meta.KEY: key, meta.NAME: user.get(meta.NAME, ""),
             meta.DESCRIPTION: user.get(meta.DESCRIPTION, "")}
    params = {"sr": sr, "sr_guid": sr_guid, "key": key, "target": f"{sr}/{key}",
              "props": props, "thick": thick, "from_snapshot": "@" in source}
    if params["from_snapshot"]:
        params.update(snapshot=source, snapshot_guid=guid_of(zfs, source))
    else:
        params.update(snapshot=f"{source}@zfsaga-base-{key}", base_props={BASE: key})
    return params


def start(runner: Runner, sr_key: str, sr: str, sr_guid: str, source: Target, thick: bool,
          key: str | None = None):
    return VolumeClone.begin(runner, sr_key, lambda: resolve(runner.zfs, sr, sr_guid,
                                                             current(source), thick, key))


class VolumeClone(Saga):
    KIND = "volume.clone"
    VERBS = ("Volume.clone",)

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        clone = dict(snapshot=Param("snapshot"), target=Param("target"), props=Param("props"),
                     reserve=Param("thick"))
        if params["from_snapshot"]:
            return [CloneSnapshot("clone", snapshot_guid=Param("snapshot_guid"), **clone)]
        return [TakeSnapshot("base", target=Param("snapshot"), props=Param("base_props")),
                CloneSnapshot("clone", snapshot_guid=Fact("base", "guid"), **clone),
                ReleaseSnapshot("release_base", snapshot=Param("snapshot"),
                                guid=Fact("base", "guid"))]
