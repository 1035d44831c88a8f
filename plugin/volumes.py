"""A volume as xapi sees it (the IDL's `volume` record), built from what ZFS holds: the native
properties of the zvol and its local user properties (key, name, description, xapi's keys);
and where a key is found, the same way for SR.ls and for a lookup of one key.

A volume keyed K lives at `<sr>/K`, its snapshots at `<sr>/K@<uuid>`, unless a revert left a
snapshot on a retired head (`<sr>/K.old-<token>`): the SR's index (steps/index.py) says where.
Mid-revert (or after a crash, before recovery) two datasets carry K for a moment, or none at
`<sr>/K`: every key is still shown exactly once, home first, then the head set aside."""
from __future__ import annotations

from zfsaga.steps import meta
from zfsaga.steps.zfs.interface import Prop

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Iterator

#: The URI scheme of zfsaga's datapath (datapath/<scheme>/ once it is installed).
SCHEME = "zfsaga"
#: What a record needs of the native properties.
NATIVE = ["type", "volsize", "refreservation", "referenced", "defer_destroy", meta.CBT]
#: The volume_type of a metadata-only VDI (Volume.data_destroy), as the IDL's variant.
CBT_METADATA = ["CBT_Metadata", None]


def volume_record(sr: str, dataset: str, native: dict[str, Prop], user: dict[str, str]) -> dict:
    """The record of a volume or, for `dataset@snap`, of a read-only snapshot VDI. A volume's
    URI names its home (`<sr>/<key>`), where a revert puts the new head back."""
    if "#" in dataset:
        return metadata_only_record(sr, native, user)
    size = int(native["volsize"].value or 0)
    thick = native["refreservation"].value not in (None, "0")
    used = size if thick else int(native["referenced"].value or 0)
    key = user[meta.KEY]
    device = dataset if "@" in dataset else f"{sr}/{key}"
    return {"key": key, "uuid": key.rpartition("@")[2],
            "name": meta.decode(user.get(meta.NAME, "")),
            "description": meta.decode(user.get(meta.DESCRIPTION, "")),
            "read_write": "@" not in dataset,
            "sharable": False, "virtual_size": size, "physical_utilisation": used,
            "uri": [f"{SCHEME}:///dev/zvol/{device}"], "keys": meta.keys_of(user),
            "cbt_enabled": (native.get(meta.CBT) or _UNSET).value == "on"}


_UNSET = Prop(None, "none")


def metadata_only_record(sr: str, native: dict[str, Prop], user: dict[str, str]) -> dict:
    """The record of a metadata-only VDI: its snapshot's, without data (no space used, never
    writable), its URI the snapshot's (Datapath.attach then says what it is)."""
    key = user[meta.KEY]
    return {"key": key, "uuid": key.rpartition("@")[2],
            "name": meta.decode(user.get(meta.NAME, "")),
            "description": meta.decode(user.get(meta.DESCRIPTION, "")),
            "read_write": False, "sharable": False,
            "virtual_size": int(native["volsize"].value or 0), "physical_utilisation": 0,
            "uri": [f"{SCHEME}:///dev/zvol/{sr}/{key}"], "keys": meta.keys_of(user),
            "volume_type": list(CBT_METADATA), "cbt_enabled": True}


def metadata_only(sr: str, sr_user: dict[str, str]
                  ) -> Iterator[tuple[str, dict[str, Prop], dict[str, str]]]:
    """(name, native, user) of each metadata-only VDI the SR's properties record; the name
    `<sr>/<volume key>#<uuid>` (the bookmark's name at home: the record knows where it is)."""
    from zfsaga.steps.metadata_only import decode

    for prop, stored in sr_user.items():
        if not prop.startswith(meta.METADATA_PREFIX):
            continue
        record = decode(stored)
        if record is None or not isinstance(record["props"].get(meta.KEY), str):
            continue
        user = record["props"]
        native = {"type": Prop("bookmark", "none"),
                  "volsize": Prop(str(record.get("volsize") or 0), "none"),
                  "refreservation": _UNSET, "referenced": Prop("0", "none"),
                  "defer_destroy": _UNSET, meta.CBT: Prop("on", "none")}
        yield f"{sr}/{user[meta.KEY].replace('@', '#', 1)}", native, user


def listed(name: str, native: dict, user: dict[str, str]) -> bool:
    """Whether xapi sees this object as a VDI: a volume or snapshot zfsaga keyed, not retired
    (a destroyed volume others still need) and not marked for deferred destroy."""
    kind = "snapshot" if "@" in name else "volume"
    return (native["type"].value == kind and meta.KEY in user and meta.RETIRED not in user
            and native["defer_destroy"].value != "on")


def rank(sr: str, name: str, key: str) -> int | None:
    """How well `name` holds the VDI keyed `key`: 0 at home, 1 on a head a revert set aside
    (the state before it, or a retired head holding newer snapshots), 2 on a revert's fresh
    clone not yet swapped in; None when the name cannot be that key's at all."""
    dataset, _, snap = name.partition("@")
    volume_key, _, snap_key = key.partition("@")
    home = f"{sr}/{volume_key}"
    if snap != snap_key:
        return None
    if dataset == home:
        return 0
    if dataset.startswith(home + ".old-"):
        return 1
    if dataset.startswith(home + ".revert-"):
        return 2
    return None


def settled(sr: str, tree: dict[str, dict[str, Prop]],
            own: dict[str, dict[str, str]]) -> Iterator[tuple[str, dict, dict]]:
    """(name, native, user) of every VDI of the SR, each key once (SR.ls's view)."""
    from zfsaga.steps.zfs import names

    best: dict[str, tuple[int, str]] = {}
    for name, native in tree.items():
        user = own.get(name, {})
        if names.parent_of(names.dataset_of(name)) != sr or not listed(name, native, user):
            continue
        r = rank(sr, name, user[meta.KEY])
        if r is not None and (user[meta.KEY] not in best or r < best[user[meta.KEY]][0]):
            best[user[meta.KEY]] = (r, name)
    for _, name in best.values():
        yield name, tree[name], own.get(name, {})


class no_collection:
    """Python's cyclic garbage collector paused for one listing (SR.ls, a lookup that lists
    the SR). A listing allocates some ten containers per VDI (dicts, Prop tuples) and frees
    none of them before it ends, so every collection it triggers finds nothing and rescans
    the grown heap: at 10,000 VDIs that made the listing's own work 1.8x per VDI what it was
    at 1,000. What it makes holds no cycle, so reference counting frees it all as before.
    Restores the collector's state as it found it (a caller may have paused it too)."""

    def __enter__(self) -> None:
        import gc  # built in: nothing to load

        self._was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        import gc

        if self._was:
            gc.enable()


def candidates(sr: str, key: str, index: str | None) -> list[str]:
    """Where to look for `key` before listing anything: home, then the index's word."""
    volume_key, _, snap = key.partition("@")
    first = [f"{sr}/{key}"]
    if snap and index:
        first.append(f"{sr}/{index}@{snap}")
    return first
