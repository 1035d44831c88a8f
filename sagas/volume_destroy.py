"""Destroy a volume (Volume.destroy). What others still need is not destroyed: a volume whose
snapshots or clones depend on it is retired (marked, hidden from SR.ls) and kept for them.

    1 retire    the volume, known by guid: destroyed, or kept retired   PIVOT: no undo
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zfsaga.steps.retire import RetireDataset
from zfsaga.steps.zfs import Zfs

if TYPE_CHECKING:
    from zfsaga.sagas.engine import Engine

KIND = "volume.destroy"
VERSION = 1


def resolve(zfs: Zfs, sr: str, sr_guid: str, dataset: str) -> dict[str, Any]:
    return {"sr": sr, "sr_guid": sr_guid, "dataset": dataset,
            "guid": zfs.get_props(dataset, ["guid"])["guid"].value}


def start(engine: "Engine", sr_key: str, sr: str, sr_guid: str, dataset: str):
    return engine.run(KIND, sr_key, lambda: resolve(engine.zfs, sr, sr_guid, dataset))


def plan(params: dict[str, Any]) -> list:
    return [RetireDataset("retire", dataset="$dataset", guid="$guid")]
