"""What makes a dataset an SR, and the key that names an SR in locks and the journal.

An SR is marked by a local user property, `org.zfsaga:sr`, set once when zfsaga takes the
dataset on. ZFS passes user properties down, so every dataset inside an SR inherits the mark:
one property read tells whether a dataset is an SR (local), inside one (inherited) or neither.
That makes nesting checkable at the moment a mark is set, and SRs nested in one another are
refused: two nested SRs would be two journals and two locks over the same VDIs.

An SR is keyed by its guid (`sr-<guid>`), never by its name: a name can be spelled for a nested
root, or change under a stuck saga, and either would split or free the key.
"""
from __future__ import annotations

from collections import namedtuple

from zfsaga.steps.zfs import names
from zfsaga.steps.zfs.errors import InvalidName, NoSpace, NotFound
from zfsaga.steps.zfs.checks import NATIVE_VALUES, VDEV_LAYOUTS
from zfsaga.steps.zfs.interface import Prop, Zfs

SR_MARK = "org.zfsaga:sr"
#: The journal's witness, outside its files: the generation of the newest saga of this SR, set
#: on the SR's dataset before the saga's first step and only after the journal committed that
#: generation (sagas/witness.py), so a journal behind it has lost records.
JOURNAL_GEN = "org.zfsaga:journal-gen"
#: zfsaga's own filesystem on each pool (journals, locks): never an SR, never a VDI.
STATE_DATASET = "zfsaga-state"

# -- what an SR offers an admin (SR.create's configuration): policy, over ZFS's facts ----------
#: The inheritable dataset properties an admin tunes per SR, each with its allowed values
#: (every value ZFS takes for it: steps/zfs/checks.py).
TUNABLE = {prop: NATIVE_VALUES[prop] for prop in ("compression", "sync", "logbias",
                                                  "primarycache")}
#: The layouts SR.create offers a new pool of devices, each with the fewest devices it takes
#: (every vdev layout the layer knows).
POOL_LAYOUTS = dict(VDEV_LAYOUTS)


class SrIdentity(namedtuple("SrIdentity", ["name", "guid"])):
    """An SR's dataset and guid (collections' named tuple: a lean start, as interface.Prop)."""

    __slots__ = ()
    name: str
    guid: str

    @property
    def key(self) -> str:
        return sr_key(self.guid)


#: The start of every SR's key (sagas/resources.py reads it: state/ never spells it).
SR_KEY_PREFIX = "sr-"


def sr_key(guid: str) -> str:
    """The name of an SR in locks, the journal's one-active index and its state directory."""
    return f"{SR_KEY_PREFIX}{guid}"


def state_dataset(sr: str) -> str:
    return f"{sr.split('/')[0]}/{STATE_DATASET}"


def is_state_dataset(name: str) -> bool:
    """Whether `name` is zfsaga's state dataset of its pool, or lies inside it."""
    state = state_dataset(name)
    return name == state or name.startswith(state + "/")


def identify(zfs: Zfs, sr: str) -> SrIdentity:
    """The SR at this name: one property read. Refuses a dataset that is not a zfsaga SR
    (never marked, or inside another SR)."""
    names.check_dataset(sr)
    try:
        props = zfs.get_props(sr, ["guid", SR_MARK])
    except NotFound:
        raise NotFound(sr, "no such SR") from None
    return identity_from(sr, props)


def identity_from(sr: str, props: dict[str, Prop]) -> SrIdentity:
    """`identify` on properties already read (guid and the mark, with its source)."""
    mark = props[SR_MARK]
    if mark.local is None:
        if mark.value is not None:
            raise InvalidName(sr, "lies inside another zfsaga SR: an SR cannot be nested")
        raise InvalidName(sr, "is not a zfsaga SR (no org.zfsaga:sr mark)")
    return SrIdentity(sr, props["guid"].value)


def adoptable(zfs: Zfs, sr: str, extra: tuple[str, ...] = ()) -> dict[str, Prop]:
    """Check that `sr` may be (or already is) an SR, and return its guid, type, mark and the
    `extra` properties, read together. Refused when it lies inside an SR, contains one, is not
    a filesystem, or is zfsaga's state dataset; the descendants are listed only when it is not
    marked yet."""
    names.check_dataset(sr)
    if is_state_dataset(sr):
        raise InvalidName(sr, "is zfsaga's own state dataset, not an SR")
    if not zfs.exists(sr):
        raise NotFound(sr, "no such pool or dataset")
    props = zfs.get_props(sr, ["guid", "type", SR_MARK, *extra])
    if props[SR_MARK].local is not None:
        return props
    if props["type"].value != "filesystem":
        raise InvalidName(sr, f"is a {props['type'].value}: an SR is a pool or filesystem")
    if props[SR_MARK].value is not None:
        raise InvalidName(sr, "lies inside another zfsaga SR: an SR cannot be nested")
    inner = [n for n, p in zfs.list_tree(sr, [SR_MARK]).items()
             if n != sr and p[SR_MARK].local is not None]
    if inner:
        raise InvalidName(sr, f"contains the zfsaga SR {inner[0]}: an SR cannot be nested")
    return props


def adopt(zfs: Zfs, sr: str) -> SrIdentity:
    """Mark `sr` as an SR (idempotent), after `adoptable`'s checks, outside any saga: a test's
    or a tool's set-up on a backend of its own. zfsaga marks an SR only in SR.create's saga
    (sagas/sr_create.py, its `mark` step); the layer's armed guard refuses this call."""
    props = adoptable(zfs, sr)
    if props[SR_MARK].local is None:
        zfs.set_props(sr, {SR_MARK: props["guid"].value})
    return SrIdentity(sr, props["guid"].value)


def vdi_props(zfs: Zfs, sr: str, vdi: str, wanted: list[str]) -> dict[str, Prop]:
    """Check that `vdi` is a volume of this SR and read `wanted` with the same call: strictly
    inside the SR (never the SR itself), not the state dataset, a volume, and inheriting its
    SR mark (not an SR of its own). NotFound when it does not exist."""
    names.check_inside(sr, vdi)
    if is_state_dataset(vdi):
        raise InvalidName(vdi, "is zfsaga's own state dataset, not a VDI")
    if not zfs.exists(vdi):
        raise NotFound(vdi, "no such VDI")
    props = zfs.get_props(vdi, ["type", SR_MARK, *wanted])
    if props["type"].value != "volume":
        raise InvalidName(vdi, f"is a {props['type'].value}, not a volume: not a VDI")
    if props[SR_MARK].value is None or props[SR_MARK].local is not None:
        raise InvalidName(vdi, f"is not inside the zfsaga SR {sr}")
    return props


def check_fits(zfs: Zfs, sr: str, need: int, what: str) -> None:
    """Refuse, before anything is recorded, a reservation of `need` bytes the SR's free space
    cannot hold (thick volumes reserve their whole size). Up front, not a promise: the space
    can still run out mid-saga, and then the step's NoSpace compensates the saga."""
    free = zfs.get_props(sr, ["available"])["available"].value
    if free is not None and need > int(free):
        raise NoSpace(sr, f"a thick volume reserves its whole size: {what} needs {need} "
                          f"bytes, more than the SR's {free} free")


#: On the root of a pool zfsaga made for an SR (SR.create on devices): the saga and step that
#: made it, set as the pool is made. Only such a pool is ever exported on detach or destroyed
#: with its SR; any other pool or dataset zfsaga took on stays where it is.
MADE_POOL = "org.zfsaga:made-pool"


#: SR.create's record, on the dataset itself, of each native property it changes there, as the
#: admin had it: `org.zfsaga:before:<prop>` holds `local=<value>` or `inherited`. Written in
#: the step that changes the property, so the pool carries it (another host, a re-import) and
#: no `zfsaga gc` of the journal loses it; SR.destroy puts each property back and removes it.
BEFORE_PREFIX = "org.zfsaga:before:"
WAS_INHERITED = "inherited"
WAS_LOCAL = "local="
#: The native properties SR.create may set on an SR's dataset (and so records): snapdev,
#: always, and the admin's tuning (TUNABLE).
RESTORED_NATIVE = ("snapdev", *TUNABLE)


def before_prop(prop: str) -> str:
    """The user property that records `prop` as it was before SR.create."""
    return BEFORE_PREFIX + prop


def before_record(local: str | None) -> str:
    """The record of a property whose local value was `local` (None: not set here)."""
    return WAS_INHERITED if local is None else WAS_LOCAL + local


def recorded_value(record: str) -> str | None:
    """The local value a record says to put back; None: inherit. A record that is not one
    of ours (set by hand, damaged) reads as inherited: the safe side is ZFS's own value."""
    return record[len(WAS_LOCAL):] if record.startswith(WAS_LOCAL) else None


def is_zfsaga_mark(prop: str) -> bool:
    """Whether a user property is zfsaga's own (any `org.zfsaga:` or `org.zfsaga.` name): no
    admin sets one, so SR.create never records one as the admin's and SR.destroy removes all."""
    return prop.startswith(("org.zfsaga:", "org.zfsaga."))


def recording(props: dict[str, Prop], natives: list[str]) -> dict[str, str]:
    """The records SR.create adds for `natives`, from the dataset's properties read with
    their records (`props` holds each native and its before_prop). A native already recorded
    keeps its record: the dataset then carries zfsaga's own values (a retried create, an
    SR whose destroy did not finish), and the record is the admin's."""
    return {before_prop(p): before_record(props[p].local) for p in natives
            if props[before_prop(p)].local is None}


def restoring(user: dict[str, str]) -> dict[str, str | None]:
    """What SR.destroy sets on the dataset, given its local user properties: each recorded
    native back to its record (None: inherit) and every zfsaga mark removed (None)."""
    out: dict[str, str | None] = {}
    for prop, value in user.items():
        native = prop[len(BEFORE_PREFIX):] if prop.startswith(BEFORE_PREFIX) else None
        if native in RESTORED_NATIVE:
            out[native] = recorded_value(value)
        if is_zfsaga_mark(prop):
            out[prop] = None
    return out


def journal_generation(zfs: Zfs, sr: str) -> int:
    """The SR's witness of its journal (0: no saga has written it yet). A value that is not a
    number was not written by zfsaga: it counts as "unknown", which refuses like a loss."""
    value = zfs.get_props(sr, [JOURNAL_GEN])[JOURNAL_GEN].local
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        raise InvalidName(sr, f"{JOURNAL_GEN}={value!r} is not a generation zfsaga wrote: "
                              f"restore it, or acknowledge with `zfsaga recover`") from None


def advance_journal_generation(zfs: Zfs, sr: str, gen: int) -> None:
    """Set the SR's witness to `gen`, a generation the journal has already committed."""
    zfs.set_witness(sr, JOURNAL_GEN, gen)
