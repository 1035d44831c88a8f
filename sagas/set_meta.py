"""Change the metadata of an SR or a volume: its name, its description, or one of xapi's keys
(Volume.set / unset, SR.set_name, ...). One step, so the recipe is short:

    1 set       the user properties, on the dataset known by guid    undo: put back the values
                                                                           it had before
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zfsaga.sagas.lookup import DESTROYED, Target, current, refuse_destroyed
from zfsaga.steps.props import SetUserProps
from zfsaga.steps.zfs.interface import Zfs

if TYPE_CHECKING:
    from zfsaga.sagas.engine import Engine

KIND = "meta.set"
VERSION = 1


def resolve(zfs: Zfs, sr: str, sr_guid: str, dataset: str,
            props: dict[str, str | None]) -> dict[str, Any]:
    """The dataset's guid and the values the properties have now (what an undo puts back)."""
    got = zfs.get_props(dataset, list(dict.fromkeys(["guid", *DESTROYED, *props])))
    refuse_destroyed(dataset, got)
    return {"sr": sr, "sr_guid": sr_guid, "dataset": dataset, "guid": got["guid"].value,
            "props": props, "before": {p: got[p].local for p in props}}


def start(engine: "Engine", sr_key: str, sr: str, sr_guid: str, dataset: Target,
          props: dict[str, str | None]):
    return engine.run(KIND, sr_key,
                      lambda: resolve(engine.zfs, sr, sr_guid, current(dataset), props))


def plan(params: dict[str, Any]) -> list:
    return [SetUserProps("set", dataset="$dataset", guid="$guid", props="$props",
                         before="$before")]
