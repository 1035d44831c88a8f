"""Change the metadata of a volume (Volume.set, Volume.unset, Volume.set_name,
Volume.set_description): its name, its description, or one of xapi's keys; an SR's name and
description are the same saga under the SR's verbs (sagas/sr_set.py). One step, so the recipe
is short:

    1 set       the user properties, on the dataset known by guid    undo: put back the values
                                                                           it had before
"""
from __future__ import annotations

from typing import Any, Callable

from zfsaga.sagas.contract import Param, Runner, Saga
from zfsaga.sagas.lookup import DESTROYED, Target, current, refuse_destroyed
from zfsaga.steps.props import SetUserProps
from zfsaga.steps.base import Step
from zfsaga.steps.zfs.interface import Zfs



def resolve(zfs: Zfs, sr: str, sr_guid: str, dataset: str,
            props: dict[str, str | None]) -> dict[str, Any]:
    """The dataset's guid and the values the properties have now (what an undo puts back)."""
    got = zfs.get_props(dataset, list(dict.fromkeys(["guid", *DESTROYED, *props])))
    refuse_destroyed(dataset, got)
    return {"sr": sr, "sr_guid": sr_guid, "dataset": dataset, "guid": got["guid"].value,
            "props": props, "before": {p: got[p].local for p in props}}


def start(runner: Runner, sr_key: str, sr: str, sr_guid: str, dataset: Target,
          props: dict[str, str | None] | Callable[[], dict[str, str | None]]):
    """`props`: the values, or a function giving them under the lock (a metadata-only VDI's
    record on the SR is rewritten whole: read and changed under the lock, so no concurrent
    change of it is lost); it raises when the VDI is gone by then."""
    return VolumeSet.begin(runner, sr_key,
                           lambda: resolve(runner.zfs, sr, sr_guid, current(dataset),
                                           props() if callable(props) else props))


class VolumeSet(Saga):
    KIND = "volume.set"
    #: The kind older versions journaled it under (for an SR's too): a stuck one resumes.
    ALIASES = ("meta.set",)
    VERBS = ("Volume.set", "Volume.unset", "Volume.set_name", "Volume.set_description",
             "Volume.enable_cbt", "Volume.disable_cbt")

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        return [SetUserProps("set", dataset=Param("dataset"), guid=Param("guid"),
                             props=Param("props"), before=Param("before"))]
