"""Grow a volume (Volume.resize). Shrinking is refused before anything is recorded (ZFS would
do it and cut off the guest's data); the new size is rounded up to whole volume blocks; a thick
volume that cannot fit in the SR's free space is refused up front.

    1 grow      volsize (and, thick, the reservation) to the new size   PIVOT: never shrunk
                                                                           back
"""
from __future__ import annotations

from typing import Any

from zfsaga.sagas.contract import Param, Runner, Saga
from zfsaga.sagas.lookup import DESTROYED, Target, current, refuse_destroyed
from zfsaga.sagas.volume_create import rounded
from zfsaga.steps import srs
from zfsaga.steps.zfs.errors import InvalidValue
from zfsaga.steps.resize import GrowVolume
from zfsaga.steps.base import Step
from zfsaga.steps.zfs.interface import Zfs



def resolve(zfs: Zfs, sr: str, sr_guid: str, dataset: str, new_size: int) -> dict[str, Any]:
    got = zfs.get_props(dataset, ["guid", "volsize", "volblocksize", "refreservation",
                                  *DESTROYED])
    refuse_destroyed(dataset, got)
    before = int(got["volsize"].value)
    size = rounded(new_size, int(got["volblocksize"].value or 8192))
    if size < before:
        raise InvalidValue(str(new_size), f"shrinking a volume is not supported: it is "
                                          f"{before} bytes, and blocks past {new_size} may "
                                          f"hold data")
    if got["refreservation"].value not in (None, "0"):
        srs.check_fits(zfs, sr, size - before, "growing it")
    return {"sr": sr, "sr_guid": sr_guid, "dataset": dataset, "guid": got["guid"].value,
            "size": size, "before": before}


def start(runner: Runner, sr_key: str, sr: str, sr_guid: str, dataset: Target,
          new_size: int):
    """`dataset`: its name, or a finder of it called under the SR's lock (sagas/lookup.py)."""
    return VolumeResize.begin(runner, sr_key, lambda: resolve(runner.zfs, sr, sr_guid,
                                                              current(dataset), new_size))


class VolumeResize(Saga):
    KIND = "volume.resize"
    VERBS = ("Volume.resize",)

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        return [GrowVolume("grow", dataset=Param("dataset"), guid=Param("guid"),
                           size=Param("size"), before=Param("before"))]
