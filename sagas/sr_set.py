"""Change an SR's name or description (SR.set_name, SR.set_description): the volume's
metadata saga (sagas/volume_set.py) on the SR's own dataset, journaled under the SR's verb.

    1 set       the user properties, on the SR known by guid          undo: put back the values
                                                                           it had before
"""
from __future__ import annotations

from typing import Any

from zfsaga.sagas.contract import Runner
from zfsaga.sagas.volume_set import VolumeSet, resolve


def start(runner: Runner, sr_key: str, sr: str, sr_guid: str,
          props: dict[str, str | None]) -> Any:
    return SrSet.begin(runner, sr_key, lambda: resolve(runner.zfs, sr, sr_guid, sr, props))


class SrSet(VolumeSet):
    KIND = "sr.set"
    ALIASES = ()  # "meta.set" is the volume's saga's: one plan, either resumes it
    VERBS = ("SR.set_name", "SR.set_description")
