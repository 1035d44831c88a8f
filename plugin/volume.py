"""The Volume verbs. A volume is the zvol `<sr>/<key>`, its key a uuid zfsaga chose; stat is
one lookup by name at any SR size. create, destroy and the metadata verbs run as sagas."""
from __future__ import annotations

from zfsaga.plugin.context import Sr, open_sr
from zfsaga.plugin.errors import InvalidArgument, SmapiError, VolumeDoesNotExist
from zfsaga.plugin.errors import NoSpace as NoSpaceLeft
from zfsaga.plugin.run import run_saga
from zfsaga.plugin.volumes import volume_record
from zfsaga.steps import meta

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Callable


def _existing(s: Sr, key: str) -> tuple[str, dict, dict]:
    """The VDI's dataset (or snapshot), native and user properties; Volume_does_not_exist
    otherwise. A metadata-only VDI (Volume.data_destroy) is `<sr>/<volume key>#<uuid>`."""
    return s.find(key)


def _with_data(s: Sr, key: str, verb: str) -> tuple[str, dict, dict]:
    """`_existing`, refusing a metadata-only VDI: it has no data to act on."""
    found = _existing(s, key)
    if "#" in found[0]:
        raise InvalidArgument(f"{verb}: {key} is a metadata-only VDI (its data was destroyed "
                              f"by Volume.data_destroy)")
    return found


def _where(s: Sr, key: str, found: str) -> Callable[[], str]:
    """A finder of where the VDI `key`, found at `found` before the saga's lock, is once the
    saga holds it (sagas/lookup.py): every verb acts on the key as it is under its lock, as
    if the calls queued on the SR ran one after the other. A destroy served first leaves
    the key no VDI (gone, or its volume retired for its snapshots): Volume_does_not_exist,
    raised in the saga's resolve, so nothing is recorded. A concurrent revert may have moved
    a snapshot onto a retired head: the key is found again, as Sr.find finds any. While the
    VDI is still at `found`, one read (`found` first)."""
    def now() -> str:
        return Sr(s.zfs, s.name, s.guid).find(key, hint=found)[0]
    return now


def create(dbg: str, sr: str, name: str, description: str, size: int,
           sharable: bool) -> dict:
    from zfsaga.sagas import volume_create

    if sharable:
        raise InvalidArgument("Volume.create: zfsaga volumes are not sharable")
    if size < 0:
        raise InvalidArgument(f"Volume.create: size {size} is negative")
    s = open_sr(sr, extra=(meta.PROVISIONING, meta.VOLBLOCKSIZE), writes=True)
    got = s.props
    block = got[meta.VOLBLOCKSIZE].local
    outcome = run_saga("Volume.create", volume_create.start, s.engine(), s.key, s.name, s.guid,
                       name, description, size, got[meta.PROVISIONING].local == "thick",
                       volblocksize=int(block) if block else None, sr=s.name)
    key = outcome.facts["create"]["name"].rsplit("/", 1)[1]
    return _record(Sr(s.zfs, s.name, s.guid), key)


def stat(dbg: str, sr: str, key: str) -> dict:
    return _record(open_sr(sr, key), key)


def _record(s: Sr, key: str) -> dict:
    """Volume.stat's answer, read through the SR's own backend (a mutating verb answers with
    what it made, read the way it reads: in-process)."""
    dataset, native, user = _existing(s, key)
    return volume_record(s.name, dataset, native, user)


def destroy(dbg: str, sr: str, key: str) -> None:
    from zfsaga.sagas import volume_destroy

    s = open_sr(sr, key, writes=True)
    target, _, _ = _existing(s, key)
    run_saga(f"Volume.destroy of {key}", volume_destroy.start, s.engine(), s.key, s.name,
             s.guid, _where(s, key, target), sr=s.name)
    return None


def snapshot(dbg: str, sr: str, key: str) -> dict:
    from zfsaga.sagas import volume_snapshot

    s = open_sr(sr, key, writes=True)
    volume, _, _ = _with_data(s, key, "Volume.snapshot")
    if "@" in volume:
        raise InvalidArgument(f"Volume.snapshot: {key} is a snapshot; snapshot its volume")
    outcome = run_saga(f"Volume.snapshot of {key}", volume_snapshot.start, s.engine(), s.key,
                       s.name, s.guid, _where(s, key, volume), sr=s.name)
    return _record(Sr(s.zfs, s.name, s.guid), _new_key(s, outcome, "snapshot"))


def clone(dbg: str, sr: str, key: str) -> dict:
    from zfsaga.sagas import volume_clone

    s = open_sr(sr, key, extra=(meta.PROVISIONING,), writes=True)
    source, _, _ = _with_data(s, key, "Volume.clone")
    outcome = run_saga(f"Volume.clone of {key}", volume_clone.start, s.engine(), s.key, s.name,
                       s.guid, _where(s, key, source), _thick(s), sr=s.name)
    return _record(Sr(s.zfs, s.name, s.guid), _new_key(s, outcome, "clone"))


def revert(dbg: str, sr: str, snapshot: str, key: str) -> None:
    """The volume `key` takes the contents of its snapshot `snapshot`, any of them, and keeps
    its key, metadata and provisioning; every other snapshot stays valid."""
    from zfsaga.sagas import volume_revert

    s = open_sr(sr, key, writes=True)
    volume, _, _ = _existing(s, key)
    if "@" in volume or "#" in volume:
        raise InvalidArgument(f"Volume.revert: {key} is a snapshot; revert its volume")
    snap, _, user = _with_data(s, snapshot, "Volume.revert")
    if "@" not in snap or user[meta.KEY].partition("@")[0] != key:
        raise InvalidArgument(f"Volume.revert: {snapshot} is not a snapshot of {key}")
    run_saga(f"Volume.revert of {key} to {snapshot}", volume_revert.start, s.engine(), s.name,
             _where(s, key, volume), _where(s, snapshot, snap), sr=s.name)
    return None


def _new_key(s: Sr, outcome, step: str) -> str:
    """The key of what the saga's step made: its name relative to the SR."""
    return outcome.facts[step]["name"][len(s.name) + 1:]


def _thick(s: Sr) -> bool:
    if meta.PROVISIONING in s.props:
        return s.props[meta.PROVISIONING].local == "thick"
    return s.zfs.get_props(s.name, [meta.PROVISIONING])[meta.PROVISIONING].local == "thick"


def resize(dbg: str, sr: str, key: str, new_size: int) -> None:
    from zfsaga.sagas import volume_resize
    from zfsaga.steps.zfs.errors import InvalidValue, NoSpace

    s = open_sr(sr, key, writes=True)
    dataset, _, _ = _with_data(s, key, "Volume.resize")
    if "@" in dataset:
        raise InvalidArgument(f"Volume.resize: {key} is a snapshot, which is read-only")
    try:
        run_saga(f"Volume.resize of {key}", volume_resize.start, s.engine(), s.key, s.name,
                 s.guid, _where(s, key, dataset), new_size, sr=s.name)
    except InvalidValue as exc:  # xapi's own code and words for a shrink (VDI_INVALID_SIZE)
        raise ResizeRefused("VDI Invalid size", exc.detail) from None
    except NoSpace as exc:
        raise NoSpaceLeft(exc.detail) from None
    return None


class ResizeRefused(SmapiError):
    code = "SR_BACKEND_FAILURE_79"

    def __init__(self, what: str, why: str) -> None:
        super().__init__(what, why)
        self.name, self.params = what, [what, why]


def _set(sr: str, key: str, props: dict[str, str | None]) -> None:
    from zfsaga.sagas import volume_set

    s = open_sr(sr, key, writes=True)
    dataset, _, _ = _existing(s, key)
    if "#" in dataset:
        _set_metadata_only(s, key, props)
        return
    run_saga(f"changing the metadata of {key}", volume_set.start, s.engine(), s.key, s.name,
             s.guid, _where(s, key, dataset), props, sr=s.name)


def _set_metadata_only(s: Sr, key: str, props: dict[str, str | None]) -> None:
    """Volume.set and its kin on a metadata-only VDI: its record, a property of the SR,
    rewritten under the SR's lock from what it holds then (xapi sets vdi-type=cbt_metadata
    right after Volume.data_destroy)."""
    from zfsaga.sagas import volume_set
    from zfsaga.steps import metadata_only

    prop = meta.metadata_prop(key)

    def record() -> dict[str, str | None]:
        stored = s.zfs.get_props(s.name, [prop])[prop].local
        if stored is None:  # destroyed meanwhile: a serial order's answer
            raise VolumeDoesNotExist(f"no volume {key!r} in SR {s.name}")
        return {prop: meta.encode(metadata_only.with_props(stored, props))}

    run_saga(f"changing the metadata of {key}", volume_set.start, s.engine(), s.key, s.name,
             s.guid, s.name, record, sr=s.name)


def enable_cbt(dbg: str, sr: str, key: str) -> None:
    """Changed block tracking on: a user property of the volume (its snapshots inherit it,
    the pool carries it). ZFS itself tracks every block's birth: nothing else to start."""
    _set_cbt(sr, key, "Volume.enable_cbt", "on")


def disable_cbt(dbg: str, sr: str, key: str) -> None:
    """Changed block tracking off; the metadata-only VDIs and their bookmarks stay."""
    _set_cbt(sr, key, "Volume.disable_cbt", None)


def _set_cbt(sr: str, key: str, verb: str, value: str | None) -> None:
    from zfsaga.sagas import volume_set

    s = open_sr(sr, key, writes=True)
    dataset, _, _ = _with_data(s, key, verb)
    if "@" in dataset:
        raise InvalidArgument(f"{verb}: {key} is a snapshot; changed block tracking is its "
                              f"volume's")
    run_saga(f"{verb} of {key}", volume_set.start, s.engine(), s.key, s.name, s.guid,
             _where(s, key, dataset), {meta.CBT: value}, sr=s.name)


def data_destroy(dbg: str, sr: str, key: str) -> None:
    """The snapshot's data goes, a bookmark of it stays, and the VDI stays listed as
    CBT_Metadata with its metadata (sagas/volume_data_destroy.py). Idempotent: a VDI that is
    metadata-only already answers success."""
    from zfsaga.sagas import volume_data_destroy

    s = open_sr(sr, key, writes=True)
    snapshot, native, _ = _existing(s, key)
    if "#" in snapshot:
        return None
    if "@" not in snapshot:
        raise InvalidArgument(f"Volume.data_destroy: {key} is a volume, not a snapshot; only "
                              f"a snapshot's data can be destroyed")
    if native[meta.CBT].value != "on":
        raise InvalidArgument(f"Volume.data_destroy: changed block tracking is not enabled on "
                              f"the volume of {key} (Volume.enable_cbt)")
    run_saga(f"Volume.data_destroy of {key}", volume_data_destroy.start, s.engine(), s.key,
             s.name, s.guid, _where(s, key, snapshot), sr=s.name)
    return None


def set_key(dbg: str, sr: str, key: str, k: str, v: str) -> None:
    _set(sr, key, {meta.key_prop(k): meta.encode(v)})


def unset_key(dbg: str, sr: str, key: str, k: str) -> None:
    _set(sr, key, {meta.key_prop(k): None})


def set_name(dbg: str, sr: str, key: str, new_name: str) -> None:
    _set(sr, key, {meta.NAME: meta.encode(new_name)})


def set_description(dbg: str, sr: str, key: str, new_description: str) -> None:
    _set(sr, key, {meta.DESCRIPTION: meta.encode(new_description)})
