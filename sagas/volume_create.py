"""Create a volume (Volume.create): a zvol named by its new key, born with its ownership tag,
key, name and description in the same call, thick or thin as the SR says.

    1 create    <sr>/<key>, size rounded up to the volume block size   undo: destroy it (if
                (a size of 0 becomes one block)                               still ours)

A thick volume that cannot fit in the SR's free space is refused before anything is recorded.
"""
from __future__ import annotations

import uuid as uuidlib
from typing import Any

from zfsaga.sagas.contract import Param, Runner, Saga
from zfsaga.state.locks import Scope
from zfsaga.steps.base import Step
from zfsaga.steps import meta, srs
from zfsaga.steps.create import CreateVolume
from zfsaga.steps.zfs.errors import InvalidValue
from zfsaga.steps.zfs.interface import DEFAULT_VOLBLOCKSIZE, MAX_VOLSIZE, Zfs



def rounded(size: int, block: int) -> int:
    """At least `size` and at least one block, in whole blocks (SMAPIv3: never round down)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidValue(repr(size), "a volume size is a whole number of bytes, 0 or more")
    whole = max(block, -(-size // block) * block)
    if whole > MAX_VOLSIZE:
        raise InvalidValue(str(size), "larger than ZFS can make a volume")
    return whole


def resolve(zfs: Zfs, sr: str, sr_guid: str, name: str, description: str, size: int,
            thick: bool, key: str | None = None, volblocksize: int | None = None
            ) -> dict[str, Any]:
    key = key or str(uuidlib.uuid4())
    size = rounded(size, volblocksize or DEFAULT_VOLBLOCKSIZE)
    if thick:
        srs.check_fits(zfs, sr, size, "the new volume")
    props = {meta.KEY: key, meta.NAME: meta.encode(name),
             meta.DESCRIPTION: meta.encode(description)}
    return {"sr": sr, "sr_guid": sr_guid, "key": key, "target": f"{sr}/{key}",
            "size": size, "sparse": not thick, "props": props, "volblocksize": volblocksize}


def start(runner: Runner, sr_key: str, sr: str, sr_guid: str, name: str, description: str,
          size: int, thick: bool, key: str | None = None, volblocksize: int | None = None):
    """`key`: the new volume's key, random unless a test fixes it; `volblocksize`: the SR's
    (None: ZFS's default)."""
    rounded(size, volblocksize or DEFAULT_VOLBLOCKSIZE)  # refused before any lock or journal
    key = key or str(uuidlib.uuid4())
    # A new volume touches nothing that exists: its saga locks only its own name (and the SR
    # shared), so creates run side by side, and a stuck saga elsewhere in the SR blocks none.
    return VolumeCreate.begin(runner, VolumeCreate.resource(sr_key, f"new-{key}"),
                              lambda: resolve(runner.zfs, sr, sr_guid, name, description, size,
                                              thick, key, volblocksize))


class VolumeCreate(Saga):
    KIND = "volume.create"
    #: Locks `<SR key>/new-<key>`, the SR's lock held shared: creates run side by side.
    SCOPE = Scope.INSIDE
    VERBS = ("Volume.create",)

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        return [CreateVolume("create", target=Param("target"), size=Param("size"),
                             sparse=Param("sparse"), props=Param("props"),
                             volblocksize=params.get("volblocksize"))]
