"""The one interface to ZFS that every step uses, with two backends: real (pyzfs + zfs CLI) and
the in-memory model. Names are validated here, once, before any backend sees them, and every
call passes through `ZfsHooks` so fault injection and call counting sit at one boundary.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import namedtuple

from zfsaga.steps.zfs import names
from zfsaga.steps.zfs.errors import InvalidName, InvalidValue
from zfsaga.steps.zfs.guard import SagaGuard

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Callable, Iterable, TypeVar

    T = TypeVar("T")

#: Native properties the layer reads. Space accounting (used, available, referenced) is real on
#: the real backend; the model does not simulate it and answers None.
NATIVE_PROPS = ("type", "guid", "createtxg", "creation", "origin", "volsize",
                "volblocksize", "refreservation", "defer_destroy", "userrefs", "snapdev",
                "mountpoint", "mounted", "used", "available", "referenced", "compression", "sync", "logbias",
                "primarycache")
#: The inheritable dataset properties an admin tunes per SR, each with its allowed values
#: (OpenZFS 2.1's, less the deprecated and the exotic).
TUNABLE = {
    "compression": ("on", "off", "lz4", "zstd", "zle", "lzjb", "gzip",
                    *(f"gzip-{n}" for n in range(1, 10)), *(f"zstd-{n}" for n in range(1, 20))),
    "sync": ("standard", "always", "disabled"),
    "logbias": ("latency", "throughput"),
    "primarycache": ("all", "none", "metadata"),
}
#: Native properties the layer may set (user properties, "module:name", are always allowed).
#: refreservation is only ever set to 0 this way (a retired volume releases its space);
#: a thick volume's own is set at creation or by `reserve`.
SETTABLE_NATIVE = ("volsize", "snapdev", "refreservation", *TUNABLE)
#: A new pool's vdev layouts, each with the fewest devices it takes.
POOL_LAYOUTS = {"stripe": 1, "mirror": 2, "raidz1": 2, "raidz2": 3, "raidz3": 4}
DEFAULT_VOLBLOCKSIZE = 8192  # OpenZFS 2.1; 2.2 moved to 16K
MAX_VOLSIZE = 2**63 - 1
#: ZFS's limit for a user property value (ZAP_MAXVALUELEN in bytes, 8192 in OpenZFS 2.1).
MAX_USER_VALUE = 8191


class Prop(namedtuple("Prop", ["value", "source"])):
    """One property of one dataset: its value as `zfs get -Hp` prints it (None when unset or not
    applicable), and its source: local, default, inherited, none (read-only or not applicable).
    collections' named tuple, not a dataclass nor typing's: read-only verbs start a process
    each, and dataclasses (inspect) or typing would add a fifth to that start."""

    __slots__ = ()
    value: str | None
    source: str

    @property
    def local(self) -> str | None:
        """The value only if it was set on this object itself (never an inherited tag)."""
        return self.value if self.source == "local" else None


def is_user_prop(prop: str) -> bool:
    """User properties are 'module:name' in lowercase ZFS syntax."""
    return ":" in prop and names._COMPONENT.fullmatch(prop) is not None and prop == prop.lower()


def check_props(props: dict[str, str] | None, *, native_ok: bool = False) -> dict[str, str]:
    """Validate a property dict before it reaches ZFS."""
    out: dict[str, str] = {}
    for key, value in (props or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidValue(repr(key), "property names and values are strings")
        if not (is_user_prop(key) or (native_ok and key in SETTABLE_NATIVE)):
            raise InvalidValue(key, "not a user property (module:name) the layer may set")
        if len(key) > 255 or len(value.encode()) > MAX_USER_VALUE or "\n" in value \
                or "\t" in value:
            raise InvalidValue(key, "property name or value too long or has a tab/newline")
        out[key] = value
    return out


def check_size(size: int, blocksize: int = 1) -> int:
    """Sizes are positive ints, within ZFS's range, and multiples of the block size."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size > MAX_VOLSIZE:
        raise InvalidValue(str(size), "size must be a positive integer number of bytes")
    if size % blocksize:
        raise InvalidValue(str(size), f"volume size must be a multiple of volblocksize {blocksize}")
    return size


class ZfsHooks:
    """Called around every ZFS call: the place for fault injection and call counting.
    The default does nothing but count."""

    def __init__(self) -> None:
        self.calls = 0
        self.mutations = 0

    def before(self, op: str, name: str, mutating: bool) -> None:
        self.calls += 1
        self.mutations += mutating

    def after(self, op: str, name: str, mutating: bool) -> None:
        pass

    def failed(self, op: str, name: str, mutating: bool, error: Exception) -> None:
        pass


class Zfs(ABC):
    """Every ZFS action and query the plugin needs. Public methods validate and go through the
    hooks; backends implement the underscored methods."""

    def __init__(self, hooks: ZfsHooks | None = None) -> None:
        self.hooks = hooks or ZfsHooks()
        #: Refuses, when armed, a change made outside a saga (guard.py).
        self.guard = SagaGuard()

    def _call(self, op: str, name: str, mutating: bool, fn: Callable[[], T]) -> T:
        if mutating:
            self.guard.check(op, name)  # before the hooks: a refused call never reached ZFS
        self.hooks.before(op, name, mutating)
        try:
            result = fn()
        except Exception as exc:
            self.hooks.failed(op, name, mutating, exc)
            raise
        self.hooks.after(op, name, mutating)
        return result

    # -- mutations ---------------------------------------------------------------------------
    def create_zvol(self, name: str, size: int, *, sparse: bool = True,
                    volblocksize: int | None = None, props: dict[str, str] | None = None) -> None:
        """Create a zvol; user properties are set atomically with it (an ownership tag)."""
        names.check_dataset(name)
        bs = volblocksize or DEFAULT_VOLBLOCKSIZE
        if bs < 512 or bs > 131072 or bs & (bs - 1):
            raise InvalidValue(str(bs), "volblocksize must be a power of two, 512 to 128K")
        check_size(size, bs)
        p = check_props(props)
        self._call("create_zvol", name, True,
                   lambda: self._create_zvol(name, size, sparse, volblocksize, p))

    def create_filesystem(self, name: str, props: dict[str, str] | None = None) -> None:
        """Create a filesystem dataset (an SR's root or its hidden namespace)."""
        names.check_dataset(name)
        p = check_props(props)
        self._call("create_filesystem", name, True, lambda: self._create_filesystem(name, p))

    def snapshot(self, snaps: Iterable[str], props: dict[str, str] | None = None) -> None:
        """Take one or more snapshots atomically, all carrying the same user properties."""
        snaps = [names.check_snapshot(s) for s in snaps]
        if not snaps:
            raise InvalidValue("snapshot", "no snapshot named")
        if len({names.dataset_of(s) for s in snaps}) != len(snaps):
            raise InvalidName(snaps[0], "two snapshots of one dataset in one call")
        p = check_props(props)
        self._call("snapshot", snaps[0], True, lambda: self._snapshot(snaps, p))

    def clone(self, snapshot: str, target: str, props: dict[str, str] | None = None, *,
              reserve: bool = False) -> None:
        """Clone a snapshot into a new dataset, tagged atomically. A clone starts sparse;
        `reserve` reserves its whole size in the same call (a thick volume stays thick)."""
        names.check_snapshot(snapshot)
        names.check_dataset(target)
        p = check_props(props)
        reservation = None
        if reserve and self.exists(snapshot):  # a missing one fails in the clone itself
            size = self.get_props(snapshot, ["volsize"])["volsize"].value
            if size is None:
                raise InvalidValue(snapshot, "only a volume's snapshot can be cloned reserved")
            reservation = int(size)
        # lzc_clone (2.1.11) accepts a zvol as the parent and makes a dataset that no listing
        # shows: a leak nobody could find. The zfs CLI checks this; the layer must too.
        parent = names.parent_of(target)
        if parent is not None:
            kind = self.get_props(parent, ["type"])["type"].value if self.exists(parent) else None
            if kind not in (None, "filesystem"):
                raise InvalidName(target, f"parent {parent} is a {kind}, not a filesystem")
        self._call("clone", target, True,
                   lambda: self._clone(snapshot, target, p, reservation))

    def promote(self, name: str) -> None:
        """Promote a clone: it takes over its origin's older snapshots."""
        names.check_dataset(name)
        self._call("promote", name, True, lambda: self._promote(name))

    def rename(self, old: str, new: str) -> None:
        """Rename a dataset (its snapshots follow; clones' origins follow)."""
        names.check_dataset(old)
        names.check_dataset(new)
        if new.startswith(old + "/"):
            from zfsaga.steps.zfs.errors import InvalidName
            raise InvalidName(new, "cannot rename a dataset below itself")
        self._call("rename", old, True, lambda: self._rename(old, new))

    def destroy(self, name: str) -> None:
        """Destroy a dataset that has no snapshots and no children (HasDependents otherwise)."""
        names.check_dataset(name)
        self._call("destroy", name, True, lambda: self._destroy(name))

    def destroy_snapshots(self, snaps: Iterable[str], *, defer: bool = False) -> None:
        """Destroy snapshots atomically; missing ones are ignored. With `defer`, cloned or held
        snapshots are marked and go when their last clone or hold goes."""
        snaps = [names.check_snapshot(s) for s in snaps]
        if snaps:
            self._call("destroy_snapshots", snaps[0], True,
                       lambda: self._destroy_snapshots(snaps, defer))

    def mount(self, name: str) -> None:
        """Mount a filesystem at its mountpoint. Datasets made through libzfs_core are not
        mounted (only the zfs CLI mounts after create); AlreadyExists if it is mounted."""
        names.check_dataset(name)
        self._call("mount", name, True, lambda: self._mount(name))

    def set_props(self, name: str, props: dict[str, str]) -> None:
        """Set user properties (and volsize/snapdev) on a dataset or snapshot."""
        names.check_any(name)
        p = check_props(props, native_ok=True)
        if p.get("refreservation", "0") != "0":
            raise InvalidValue(p["refreservation"], "a reservation is set only to 0 here (a "
                                                    "thick volume's own: create or reserve)")
        if "volsize" in p:
            if not p["volsize"].isdigit():
                raise InvalidValue(p["volsize"], "volsize must be a number of bytes")
            check_size(int(p["volsize"]))
        self._call("set_props", name, True, lambda: self._set_props(name, p))

    def set_witness(self, name: str, prop: str, generation: int) -> None:
        """Raise the user property that witnesses the journal (steps/srs.py, JOURNAL_GEN) to
        `generation`, never lower it: two sagas of one SR (creates, side by side) write theirs
        in either order, and a witness gone back would hide the loss of the newer one's
        records. An op of its own name, so faults aimed at a step's property writes, and the
        labels of crash points, stay the steps' own."""
        names.check_any(name)
        check_props({prop: str(generation)})
        self._call("set_witness", name, True,
                   lambda: self._raise_counter(name, prop, generation))

    def _raise_counter(self, name: str, prop: str, value: int) -> None:
        """Set the numeric user property `prop` to `value` unless it holds a larger number:
        read, then set. Each backend overrides it to make the two one step where it can (the
        model, in one call under its lock; the real backend, one channel program)."""
        now = self.get_props(name, [prop])[prop].local
        if now is not None and now.isdigit() and int(now) >= value:
            return
        self._set_props(name, {prop: str(value)})

    def set_volsize(self, name: str, size: int) -> None:
        """Resize a zvol. ZFS allows shrinking; refusing a shrink is the caller's policy.
        A reserved (thick) zvol keeps its whole size reserved: ZFS moves refreservation along
        with volsize only when it holds ZFS's own computed value, which lzc_create never sets,
        so both are set together, in one call."""
        check_size(size)
        names.check_dataset(name)
        props = {"volsize": str(size)}
        if self.get_props(name, ["refreservation"])["refreservation"].value not in (None, "0"):
            props["refreservation"] = str(size)
        self._call("set_props", name, True, lambda: self._set_props(name, props))

    def reserve(self, name: str) -> None:
        """Reserve a volume's whole size (refreservation = volsize): a thick volume's clone
        that a cut-off process left without its reservation. NoSpace when the pool cannot."""
        names.check_dataset(name)
        size = self.get_props(name, ["volsize"])["volsize"].value
        if size is None:
            raise InvalidValue(name, "only a volume can be reserved")
        # An op of its own name (a set of refreservation underneath), so a fault or a crash
        # point can aim at the reserve apart from the steps' other property writes.
        self._call("reserve", name, True,
                   lambda: self._set_props(name, {"refreservation": size}))

    def inherit(self, name: str, prop: str) -> None:
        """Remove a local user property (or reset snapdev) so the inherited value shows."""
        names.check_any(name)
        check_props({prop: ""}, native_ok=True)
        if prop == "volsize":
            raise InvalidValue(prop, "volsize cannot be inherited")
        self._call("inherit", name, True, lambda: self._inherit(name, prop))

    def hold(self, snapshot: str, tag: str) -> None:
        """Put a user hold on a snapshot: it cannot be destroyed until released."""
        names.check_snapshot(snapshot)
        names.check_component(tag, "hold tag")
        self._call("hold", snapshot, True, lambda: self._hold(snapshot, tag))

    def release(self, snapshot: str, tag: str) -> None:
        """Release a user hold (a deferred-destroy snapshot then goes if nothing else holds it)."""
        names.check_snapshot(snapshot)
        names.check_component(tag, "hold tag")
        self._call("release", snapshot, True, lambda: self._release(snapshot, tag))

    # -- pools (SR.create on devices; their sagas journal on the host: sagas/pool_*.py) ------
    def create_pool(self, pool: str, devices: list[str], layout: str, *,
                    props: dict[str, str] | None = None, ashift: int | None = None) -> None:
        """Make a pool of `devices` in one vdev of `layout`; `props` are set on its root
        dataset as it is made (an ownership tag). Never forced: a device that holds a
        filesystem or a pool is DeviceInUse."""
        names.check_pool(pool)
        devs = [names.check_device(d) for d in devices]
        if layout not in POOL_LAYOUTS:
            raise InvalidValue(layout, f"a layout is one of {', '.join(POOL_LAYOUTS)}")
        if len(devs) < POOL_LAYOUTS[layout] or len(set(devs)) != len(devs):
            raise InvalidValue(layout, f"{layout} takes at least {POOL_LAYOUTS[layout]} "
                                       f"distinct device(s), not {len(devs)}")
        if ashift is not None and not 9 <= ashift <= 16:
            raise InvalidValue(str(ashift), "ashift is 9 to 16")
        p = check_props(props, native_ok=True)
        self._call("create_pool", pool, True,
                   lambda: self._create_pool(pool, devs, layout, p, ashift))

    def import_pool(self, pool_guid: str, devices: list[str]) -> None:
        """Import the pool with this guid, looking for it on `devices` first."""
        if not str(pool_guid).isdigit():
            raise InvalidValue(str(pool_guid), "a pool guid is a decimal number")
        devs = [names.check_device(d) for d in devices]
        self._call("import_pool", str(pool_guid), True,
                   lambda: self._import_pool(str(pool_guid), devs))

    def export_pool(self, pool: str) -> None:
        names.check_pool(pool)
        self._call("export_pool", pool, True, lambda: self._export_pool(pool))

    def destroy_pool(self, pool: str) -> None:
        names.check_pool(pool)
        self._call("destroy_pool", pool, True, lambda: self._destroy_pool(pool))

    def importable_pools(self, devices: list[str]) -> list[dict[str, str]]:
        """The pools not imported whose labels `zpool import` finds on these devices: each
        {name, guid, state}. Reads the labels only; imports nothing."""
        devs = [names.check_device(d) for d in devices]
        return self._call("importable_pools", devs[0] if devs else "-", False,
                          lambda: self._importable_pools(devs))

    def imported_pools(self) -> list[str]:
        """The names of the pools imported on this host, sorted."""
        return self._call("imported_pools", "-", False, lambda: sorted(self._imported_pools()))

    def pool_guid(self, pool: str) -> str | None:
        """The guid of the pool imported under this name; None when none is."""
        names.check_component(pool, "pool name")
        return self._call("pool_guid", pool, False, lambda: self._pool_guid(pool))

    # -- queries -----------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        """Whether a dataset or snapshot exists."""
        names.check_any(name)
        return self._call("exists", name, False, lambda: self._exists(name))

    def get_props(self, name: str, props: Iterable[str]) -> dict[str, Prop]:
        """Chosen properties of one dataset or snapshot, with their sources."""
        names.check_any(name)
        wanted = _check_readable(props)
        return self._call("get_props", name, False, lambda: self._get_props(name, wanted))

    def list_tree(self, root: str, props: Iterable[str]) -> dict[str, dict[str, Prop]]:
        """Every dataset and snapshot at or below `root`, with chosen properties, in one call."""
        names.check_dataset(root)
        wanted = _check_readable(props)
        return self._call("list_tree", root, False, lambda: self._list_tree(root, wanted))

    def user_props(self, name: str) -> dict[str, str]:
        """Every user property set on this object itself (source local), whatever its name:
        the metadata a replacement of the object must carry over. Inherited ones are left out."""
        names.check_any(name)
        return self._call("user_props", name, False, lambda: self._user_props(name))

    def describe(self, name: str, props: Iterable[str]) -> tuple[dict[str, Prop],
                                                                dict[str, str]]:
        """Chosen native properties and every local user property of one object, in one call
        (what `get_props` and `user_props` give, for the price of one: Volume.stat runs before
        every datapath step)."""
        names.check_any(name)
        wanted = _check_readable(props)
        return self._call("describe", name, False, lambda: self._describe(name, wanted))

    def describe_many(self, objects: list[str], props: Iterable[str]
                      ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]:
        """`describe` of several objects in one call; those that do not exist are left out
        (an SR and one of its volumes: Volume.stat reads both for the price of one)."""
        for name in objects:
            names.check_any(name)
        wanted = _check_readable(props)
        return self._call("describe_many", objects[0], False,
                          lambda: self._describe_many(list(objects), wanted))

    def describe_tree(self, root: str, props: Iterable[str]
                      ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]:
        """`describe` of root and everything below it, in one call (SR.ls)."""
        names.check_dataset(root)
        wanted = _check_readable(props)
        return self._call("describe_tree", root, False,
                          lambda: self._describe_tree(root, wanted))

    def tree_user_props(self, root: str) -> dict[str, dict[str, str]]:
        """Every user property set locally on any dataset or snapshot at or below root, in one
        call: name -> {property: value}. Objects with no local user property are absent."""
        names.check_dataset(root)
        return self._call("tree_user_props", root, False, lambda: self._tree_user_props(root))

    def pool_health(self, pool: str) -> str:
        """The pool's state as `zpool list` names it: ONLINE, DEGRADED, FAULTED, OFFLINE,
        REMOVED, UNAVAIL or SUSPENDED."""
        names.check_component(pool, "pool name")
        return self._call("pool_health", pool, False, lambda: self._pool_health(pool))

    def pool_ashift(self, pool: str) -> int:
        """The pool's ashift property: 0 when unset (ZFS then picks each vdev's from its
        devices' sector size)."""
        names.check_component(pool, "pool name")
        return self._call("pool_ashift", pool, False, lambda: self._pool_ashift(pool))

    def holds(self, snapshot: str) -> set[str]:
        """The user hold tags on a snapshot."""
        names.check_snapshot(snapshot)
        return self._call("holds", snapshot, False, lambda: self._holds(snapshot))

    @abstractmethod
    def version(self) -> str:
        """A human-readable backend and ZFS version."""

    # -- backend primitives ------------------------------------------------------------------
    @abstractmethod
    def _create_zvol(self, name: str, size: int, sparse: bool, volblocksize: int | None,
                     props: dict[str, str]) -> None: ...
    @abstractmethod
    def _create_pool(self, pool: str, devices: list[str], layout: str, props: dict[str, str],
                     ashift: int | None) -> None: ...
    @abstractmethod
    def _import_pool(self, pool_guid: str, devices: list[str]) -> None: ...
    @abstractmethod
    def _export_pool(self, pool: str) -> None: ...
    @abstractmethod
    def _destroy_pool(self, pool: str) -> None: ...
    @abstractmethod
    def _pool_guid(self, pool: str) -> str | None: ...
    @abstractmethod
    def _importable_pools(self, devices: list[str]) -> list[dict[str, str]]: ...
    @abstractmethod
    def _imported_pools(self) -> list[str]: ...
    @abstractmethod
    def _create_filesystem(self, name: str, props: dict[str, str]) -> None: ...
    @abstractmethod
    def _snapshot(self, snaps: list[str], props: dict[str, str]) -> None: ...
    @abstractmethod
    def _clone(self, snapshot: str, target: str, props: dict[str, str],
               reservation: int | None) -> None: ...
    @abstractmethod
    def _promote(self, name: str) -> None: ...
    @abstractmethod
    def _rename(self, old: str, new: str) -> None: ...
    @abstractmethod
    def _destroy(self, name: str) -> None: ...
    @abstractmethod
    def _destroy_snapshots(self, snaps: list[str], defer: bool) -> None: ...
    @abstractmethod
    def _mount(self, name: str) -> None: ...
    @abstractmethod
    def _set_props(self, name: str, props: dict[str, str]) -> None: ...
    @abstractmethod
    def _inherit(self, name: str, prop: str) -> None: ...
    @abstractmethod
    def _hold(self, snapshot: str, tag: str) -> None: ...
    @abstractmethod
    def _release(self, snapshot: str, tag: str) -> None: ...
    @abstractmethod
    def _exists(self, name: str) -> bool: ...
    @abstractmethod
    def _get_props(self, name: str, props: list[str]) -> dict[str, Prop]: ...
    @abstractmethod
    def _list_tree(self, root: str, props: list[str]) -> dict[str, dict[str, Prop]]: ...
    @abstractmethod
    def _user_props(self, name: str) -> dict[str, str]: ...
    @abstractmethod
    def _pool_health(self, pool: str) -> str: ...

    @abstractmethod
    def _pool_ashift(self, pool: str) -> int: ...
    @abstractmethod
    def _describe(self, name: str, props: list[str]) -> tuple[dict[str, Prop],
                                                              dict[str, str]]: ...
    @abstractmethod
    def _tree_user_props(self, root: str) -> dict[str, dict[str, str]]: ...

    @abstractmethod
    def _describe_many(self, objects: list[str], props: list[str]
                       ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]: ...

    @abstractmethod
    def _describe_tree(self, root: str, props: list[str]
                       ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]: ...
    @abstractmethod
    def _holds(self, snapshot: str) -> set[str]: ...


def _check_readable(props: Iterable[str]) -> list[str]:
    wanted = list(props)
    for p in wanted:
        if p not in NATIVE_PROPS and not is_user_prop(p):
            raise InvalidValue(p, "not a property the layer reads")
    if not wanted:
        raise InvalidValue("props", "no property asked for")
    return wanted
