"""Snapshot a volume (Volume.snapshot): `<sr>/<key>@<uuid>`, read-only, born with its own key
and the volume's name and description (the IDL: xapi's other keys are not copied).

    1 snapshot  the volume, tagged atomically                         undo: destroy it (if ours)
"""
from __future__ import annotations

import uuid as uuidlib
from typing import Any

from zfsaga.sagas.contract import Param, Runner, Saga
from zfsaga.sagas.lookup import Target, current, refuse_retired
from zfsaga.steps import meta
from zfsaga.steps.snapshot import TakeSnapshot
from zfsaga.steps.base import Step
from zfsaga.steps.zfs.interface import Zfs



def resolve(zfs: Zfs, sr: str, sr_guid: str, volume: str, snap: str | None = None
            ) -> dict[str, Any]:
    snap = snap or str(uuidlib.uuid4())
    user = zfs.user_props(volume)
    refuse_retired(volume, user)  # a destroyed volume its snapshots still need
    volume_key = user[meta.KEY]
    props = {meta.KEY: f"{volume_key}@{snap}",
             meta.NAME: user.get(meta.NAME, ""), meta.DESCRIPTION: user.get(meta.DESCRIPTION, "")}
    return {"sr": sr, "sr_guid": sr_guid, "target": f"{volume}@{snap}", "props": props}


def start(runner: Runner, sr_key: str, sr: str, sr_guid: str, volume: Target,
          snap: str | None = None):
    """`volume`: its name, or a finder of it called under the SR's lock (sagas/lookup.py)."""
    return VolumeSnapshot.begin(runner, sr_key, lambda: resolve(runner.zfs, sr, sr_guid,
                                                                current(volume), snap))


class VolumeSnapshot(Saga):
    KIND = "volume.snapshot"
    VERBS = ("Volume.snapshot",)

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        return [TakeSnapshot("snapshot", target=Param("target"), props=Param("props"))]
