"""Volume.list_changed_blocks: which 64 KiB blocks of a volume changed between two points of
its history, for changed block tracking (CBT). ZFS knows it: an incremental send from the
earlier point (a snapshot, or the bookmark a metadata-only VDI keeps) to the later snapshot
carries every block written or freed in between (steps/zfs/send.py reads it in-process).

`key` is a snapshot VDI or a metadata-only VDI (Volume.data_destroy); `key2` a later snapshot
VDI of the same volume, or the volume itself, as backup tools ask it: an incremental send of an
open zvol fails (EBUSY), so that count reads a temporary snapshot of it, which a saga takes and
destroys around the count (sagas/volume_list_changed_blocks.py). Every refusal comes before any
send and before any change to ZFS, and a send or a stream that fails is an error, never "no
change": a backup tool falls back to a full copy on an error, and would silently miss data on
a wrong bitmap. The answer is read under the SR's lock, so no saga of the SR (a destroy of
`key2`, a revert that moves a bookmark) runs while the send holds what it reads."""
from __future__ import annotations

from dataclasses import dataclass

from zfsaga.plugin.context import Sr, open_sr
from zfsaga.plugin.errors import InternalError, InvalidArgument, Unimplemented
from zfsaga.plugin.run import read_through_saga
from zfsaga.steps import meta

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Any

#: What `key` may be, said in the refusals.
POINTS = "a snapshot VDI or a metadata-only VDI (Volume.data_destroy) of the volume"


@dataclass
class Points:
    """The two points of one count, checked: `since` (a snapshot, or a bookmark where it is
    now), `to` (a snapshot, or the volume itself when `live`) and the size of `to`."""

    since: str
    to: str
    size: int
    live: bool


def list_changed_blocks(dbg: str, sr: str, key: str, key2: str, offset: int,
                        length: int) -> dict[str, Any]:
    """xapi's `changed_blocks`: the granularity (64 KiB) and the base64 bitmap of the blocks
    of `key2` in the window (`offset`, `length`; xapi passes 0 and -1, the whole disk) that
    changed since `key`, most significant bit first."""
    import base64

    from zfsaga.steps.zfs.changed import GRANULARITY

    s = open_sr(sr, key, writes=True)  # writes: the send loads pyzfs anyway
    found = s.find(key2)[0]  # before the lock: only which way to count (found again under it)
    if "@" in found or "#" in found:
        engine = s.engine()
        with engine.lock(s.key).acquire(engine.lock_wait):
            points = check(s, key, key2, offset, length, found)
            bitmap = _bitmap(points.to, points.since, points.size, offset, length, key, key2)
    else:
        bitmap = _count_to_now(s, key, key2, offset, length, found)
    return {"granularity": GRANULARITY, "bitmap": base64.b64encode(bitmap).decode("ascii")}


def _count_to_now(s: Sr, key: str, key2: str, offset: int, length: int, found: str) -> bytes:
    """The count up to the live volume `key2`, through the saga that takes a temporary
    snapshot of it (checked under its lock, before the snapshot; read between its steps)."""
    from zfsaga.sagas import volume_list_changed_blocks

    checked: list[Points] = []

    def volume() -> str:
        checked.append(check(s, key, key2, offset, length, found))
        return checked[-1].to

    def read(facts: dict[str, dict[str, Any]]) -> bytes:
        points = checked[-1]
        return _bitmap(facts["point"]["name"], points.since, points.size, offset, length,
                       key, key2)

    return read_through_saga(f"Volume.list_changed_blocks of {key2} since {key}",
                             volume_list_changed_blocks.start, s.engine(), s.key, s.name,
                             s.guid, volume, read=read, sr=s.name)


def check(s: Sr, key: str, key2: str, offset: int, length: int, hint: str) -> Points:
    """Under the SR's lock: both points of the same volume, `key` the earlier, CBT enabled, the
    window on the disk, a backend that holds data; every refusal before any change."""
    from zfsaga.steps.zfs.changed import window

    since, since_txg = _since(s, key)
    to, size, volume, live = _to(s, key2, hint)
    if volume != _volume_of(key):
        raise InvalidArgument(f"Volume.list_changed_blocks: {key} and {key2} are not of the "
                              f"same volume ({_volume_of(key)} and {volume})")
    if not live and since_txg >= _txg(s, to):
        raise InvalidArgument(f"Volume.list_changed_blocks: {key2} is not later than "
                              f"{key}: the changed blocks are counted from the earlier "
                              f"point (key) to the later one (key2)")
    if live and since.replace("#", "@", 1).partition("@")[0] != to:
        # Every snapshot and bookmark of the volume's own dataset is in its history; one left
        # on a head a revert set aside is not (the send would say so too, after the temporary
        # snapshot: refused here, before any change).
        raise _not_in_history(key, key2)
    window(size, offset, length)  # InvalidValue: Invalid_argument (plugin/errors.py)
    if not s.zfs.holds_data:
        raise Unimplemented("Volume.list_changed_blocks: changed blocks need real ZFS (the "
                            "model holds no data)")
    return Points(since, to, size, live)


def _volume_of(key: str) -> str:
    return key.partition("@")[0]


def _since(s: Sr, key: str) -> tuple[str, int]:
    """The earlier point of the send (a snapshot, or the bookmark where it is now) and its
    transaction group."""
    dataset, _, _ = s.find(key)
    if "#" in dataset:
        return _bookmark(s, key)
    if "@" not in dataset:
        raise InvalidArgument(f"Volume.list_changed_blocks: {key} is a volume; the changes "
                              f"are counted from {POINTS}")
    return dataset, _txg(s, dataset)


def _bookmark(s: Sr, key: str) -> tuple[str, int]:
    """A metadata-only VDI's bookmark, found by its guid wherever a revert's promote left it
    (sagas/volume_destroy.py find_bookmark), and its transaction group."""
    from zfsaga.sagas.volume_destroy import find_bookmark
    from zfsaga.steps.metadata_only import decode

    stored = s.zfs.get_props(s.name, [meta.metadata_prop(key)])[meta.metadata_prop(key)].local
    record = decode(stored or "") or {}
    guid = str(record.get("guid") or "")
    hint = str(record.get("bookmark") or f"{s.name}/{key.replace('@', '#', 1)}")
    found = find_bookmark(s.zfs, s.name, guid, hint) if guid else None
    if found is None:
        raise InternalError(f"Volume.list_changed_blocks: the bookmark of the metadata-only "
                            f"VDI {key} (guid {guid or 'unrecorded'}) is on no head of its "
                            f"volume: its point in the history is lost; copy the disk whole")
    got = s.zfs.bookmarks(found.split("#")[0])[found]
    return found, int(got["createtxg"])


def _to(s: Sr, key2: str, hint: str) -> tuple[str, int, str, bool]:
    """The later point (a snapshot, or the volume itself), its size, the key of its volume,
    and whether it is the live volume; CBT enabled."""
    dataset, native, user = s.find(key2, hint=hint)
    if "#" in dataset:
        raise InvalidArgument(f"Volume.list_changed_blocks: {key2} is a metadata-only VDI "
                              f"(its data was destroyed); the changes are counted up to a "
                              f"snapshot VDI of the volume, or the volume itself")
    cbt = native.get(meta.CBT)
    if cbt is None or cbt.value != "on":
        raise InvalidArgument(f"Volume.list_changed_blocks: changed block tracking is not "
                              f"enabled on the volume of {key2} (Volume.enable_cbt)")
    return (dataset, int(native["volsize"].value or 0), _volume_of(user[meta.KEY]),
            "@" not in dataset)


def _not_in_history(key: str, key2: str) -> InvalidArgument:
    return InvalidArgument(
        f"Volume.list_changed_blocks: {key} is not in the history of {key2}: the volume was "
        f"reverted to a snapshot older than {key} before {key2} was taken, so the disk of "
        f"{key2} does not descend from {key}'s. No changed blocks exist between them: copy "
        f"{key2} whole, and count the changes from {key2} on")


def _txg(s: Sr, snapshot: str) -> int:
    return int(s.zfs.get_props(snapshot, ["createtxg"])["createtxg"].value or 0)


def _bitmap(to: str, since: str, size: int, offset: int, length: int, key: str,
            key2: str) -> bytes:
    """The send's bitmap, its failures said in xapi's words."""
    from zfsaga.steps.zfs.errors import NotAncestor, NotFound, StreamError
    from zfsaga.steps.zfs.send import changed_bitmap

    try:
        return changed_bitmap(to, since, size, offset, length)
    except NotAncestor:
        raise _not_in_history(key, key2) from None
    except NotFound as exc:
        raise InternalError(f"Volume.list_changed_blocks: {exc} went away during the "
                            f"send") from None
    except StreamError as exc:
        raise InternalError(f"Volume.list_changed_blocks: the changed blocks between {key} and "
                            f"{key2} are unknown (the send stream could not be read: {exc}); "
                            f"copy {key2} whole") from None
