"""Create a volume (Volume.create): a zvol named by its new key, born with its ownership tag,
key, name and description in the same call, thick or thin as the SR says.

    1 create    <sr>/<key>, size rounded up to the volume block size   undo: destroy it (if
                (a size of 0 becomes one block)                               still ours)

A thick volume that cannot fit in the SR's free space is refused before anything is recorded.
"""
from __future__ import annotations

import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from zfsaga.steps import meta, srs
from zfsaga.steps.create import CreateVolume
from zfsaga.steps.zfs.errors import InvalidValue
from zfsaga.steps.zfs.interface import DEFAULT_VOLBLOCKSIZE, MAX_VOLSIZE, Zfs

if TYPE_CHECKING:
    from zfsaga.sagas.engine import Engine

KIND = "volume.create"
VERSION = 1
#: Locks `<SR key>/new-<key>` (state/locks.py NestedLock), not the whole SR.
NARROW = True


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


def start(engine: "Engine", sr_key: str, sr: str, sr_guid: str, name: str, description: str,
          size: int, thick: bool, key: str | None = None, volblocksize: int | None = None):
    """`key`: the new volume's key, random unless a test fixes it; `volblocksize`: the SR's
    (None: ZFS's default)."""
    rounded(size, volblocksize or DEFAULT_VOLBLOCKSIZE)  # refused before any lock or journal
    key = key or str(uuidlib.uuid4())
    # A new volume touches nothing that exists: its saga locks only its own name (and the SR
    # shared), so creates run side by side, and a stuck saga elsewhere in the SR blocks none.
    return engine.run(KIND, f"{sr_key}/new-{key}",
                      lambda: resolve(engine.zfs, sr, sr_guid, name, description, size, thick,
                                      key, volblocksize))


def plan(params: dict[str, Any]) -> list:
    return [CreateVolume("create", target="$target", size="$size", sparse="$sparse",
                         props="$props", volblocksize=params.get("volblocksize"))]
