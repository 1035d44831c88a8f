"""A volume as xapi sees it (the IDL's `volume` record), built from what ZFS holds: the native
properties of the zvol and its local user properties (key, name, description, xapi's keys)."""
from __future__ import annotations

from zfsaga.steps import meta
from zfsaga.steps.zfs import Prop

#: The URI scheme of zfsaga's datapath (datapath/<scheme>/ once it is installed).
SCHEME = "zfsaga"


def volume_record(dataset: str, native: dict[str, Prop], user: dict[str, str]) -> dict:
    """The record of a volume or, for `dataset@snap`, of a read-only snapshot VDI."""
    size = int(native["volsize"].value or 0)
    thick = native["refreservation"].value not in (None, "0")
    used = size if thick else int(native["referenced"].value or 0)
    key = user[meta.KEY]
    return {"key": key, "uuid": key.rpartition("@")[2],
            "name": meta.decode(user.get(meta.NAME, "")),
            "description": meta.decode(user.get(meta.DESCRIPTION, "")),
            "read_write": "@" not in dataset,
            "sharable": False, "virtual_size": size, "physical_utilisation": used,
            "uri": [f"{SCHEME}:///dev/zvol/{dataset}"], "keys": meta.keys_of(user)}
