"""What a metadata-only VDI (Volume.data_destroy) keeps: its snapshot's metadata and where its
history point is. A bookmark holds no user property, so the record lives on the SR dataset
(steps/meta.py METADATA_PREFIX), one property per VDI: JSON of plain ASCII (no encoding
needed), read by SR.ls with the rest of the SR's properties, kept with the pool through an
export, and written as every other property is (steps/props.py)."""
from __future__ import annotations

from zfsaga.steps.meta import OWNER

TYPE_CHECKING = False  # typing only for annotations: SR.ls reads records (README, 'A lean start')
if TYPE_CHECKING:
    from typing import Any


def encode(props: dict[str, str], volsize: str | None, guid: str, bookmark: str) -> str:
    """The record of a snapshot made metadata-only: its local user properties (key, name,
    description, xapi's keys), its size, and its bookmark's guid and name when made (a hint:
    a promote or a rename moves bookmarks, guids stay)."""
    import json

    kept = {k: v for k, v in props.items() if k != OWNER}
    return json.dumps({"props": kept, "volsize": volsize or "0", "guid": guid,
                       "bookmark": bookmark}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True)


def decode(stored: str) -> dict[str, Any] | None:
    """The record, or None for a value that is not one (not ours to show)."""
    import json

    try:
        record = json.loads(stored)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("props"), dict):
        return None
    return record


def with_props(stored: str, changes: dict[str, str | None]) -> str:
    """The record with these user properties set (None: removed): Volume.set and its kin on a
    metadata-only VDI."""
    record = decode(stored) or {"props": {}}
    props = dict(record["props"])
    for prop, value in changes.items():
        if value is None:
            props.pop(prop, None)
        else:
            props[prop] = value
    return encode(props, record.get("volsize"), record.get("guid", ""),
                  record.get("bookmark", ""))
