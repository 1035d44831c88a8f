"""The ZFS layer's primitives: one public method per ZFS action or query, each one call of the
backend, made through `_call`, the layer's one boundary (the guard refuses a change outside a
saga, guard.py; the hooks inject faults and count calls). Arguments are checked first
(names.py, checks.py). The backends (real.py, model.py) implement the underscored methods;
the composites every step also uses are built on these in interface.py."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import namedtuple

from zfsaga.steps.zfs import checks, names
from zfsaga.steps.zfs.errors import InvalidName
from zfsaga.steps.zfs.guard import SagaGuard

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Callable, Iterable, TypeVar

    T = TypeVar("T")


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


class ZfsPrimitives(ABC):
    """Every single ZFS call the plugin needs, checked and made through `_call`."""

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
        checks.check_size(size, checks.check_volblocksize(volblocksize))
        p = checks.check_props(props)
        self._call("create_zvol", name, True,
                   lambda: self._create_zvol(name, size, sparse, volblocksize, p))

    def create_filesystem(self, name: str, props: dict[str, str] | None = None) -> None:
        """Create a filesystem dataset (an SR's root or its hidden namespace)."""
        names.check_dataset(name)
        p = checks.check_props(props)
        self._call("create_filesystem", name, True, lambda: self._create_filesystem(name, p))

    def snapshot(self, snaps: Iterable[str], props: dict[str, str] | None = None) -> None:
        """Take one or more snapshots atomically, all carrying the same user properties."""
        snaps = checks.check_snapshots(snaps)
        p = checks.check_props(props)
        self._call("snapshot", snaps[0], True, lambda: self._snapshot(snaps, p))

    def promote(self, name: str) -> None:
        """Promote a clone: it takes over its origin's older snapshots."""
        names.check_dataset(name)
        self._call("promote", name, True, lambda: self._promote(name))

    def rename(self, old: str, new: str) -> None:
        """Rename a dataset (its snapshots follow; clones' origins follow)."""
        checks.check_rename(old, new)
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

    def bookmark(self, snapshot: str, bookmark: str) -> None:
        """Bookmark a snapshot: `<dataset>#<name>` of the snapshot's own dataset, keeping its
        guid and createtxg (a point in the dataset's history) after the snapshot is gone.
        AlreadyExists when a bookmark has the name, NotFound when the snapshot is missing."""
        names.check_snapshot(snapshot)
        names.check_bookmark(bookmark)
        if names.dataset_of(snapshot) != bookmark.split("#")[0]:
            raise InvalidName(bookmark, f"a bookmark of {snapshot} is on its own dataset")
        self._call("bookmark", bookmark, True, lambda: self._bookmark(snapshot, bookmark))

    def destroy_bookmarks(self, marks: Iterable[str]) -> None:
        """Destroy bookmarks, all in one call; missing ones are ignored."""
        marks = [names.check_bookmark(m) for m in marks]
        if marks:
            self._call("destroy_bookmarks", marks[0], True,
                       lambda: self._destroy_bookmarks(marks))

    def mount(self, name: str) -> None:
        """Mount a filesystem at its mountpoint. Datasets made through libzfs_core are not
        mounted (only the zfs CLI mounts after create); AlreadyExists if it is mounted."""
        names.check_dataset(name)
        self._call("mount", name, True, lambda: self._mount(name))

    def set_props(self, name: str, props: dict[str, str]) -> None:
        """Set user properties (and volsize/snapdev) on a dataset or snapshot."""
        names.check_any(name)
        p = checks.check_settable(props)
        self._call("set_props", name, True, lambda: self._set_props(name, p))

    def inherit(self, name: str, prop: str) -> None:
        """Remove a local user property (or reset snapdev) so the inherited value shows."""
        names.check_any(name)
        checks.check_inheritable(prop)
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
        devs = checks.check_pool(pool, devices, layout, ashift)
        p = checks.check_props(props, native_ok=True)
        self._call("create_pool", pool, True,
                   lambda: self._create_pool(pool, devs, layout, p, ashift))

    def import_pool(self, pool_guid: str, devices: list[str]) -> None:
        """Import the pool with this guid, looking for it on `devices` first."""
        guid = checks.check_pool_guid(pool_guid)
        devs = [names.check_device(d) for d in devices]
        self._call("import_pool", guid, True, lambda: self._import_pool(guid, devs))

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

    # -- queries -----------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        """Whether a dataset or snapshot exists."""
        names.check_any(name)
        return self._call("exists", name, False, lambda: self._exists(name))

    def get_props(self, name: str, props: Iterable[str]) -> dict[str, Prop]:
        """Chosen properties of one dataset or snapshot, with their sources."""
        names.check_any(name)
        wanted = checks.check_readable(props)
        return self._call("get_props", name, False, lambda: self._get_props(name, wanted))

    def list_tree(self, root: str, props: Iterable[str]) -> dict[str, dict[str, Prop]]:
        """Every dataset and snapshot at or below `root`, with chosen properties, in one call."""
        names.check_dataset(root)
        wanted = checks.check_readable(props)
        return self._call("list_tree", root, False, lambda: self._list_tree(root, wanted))

    def user_props(self, name: str) -> dict[str, str]:
        """Every user property set on this object itself (source local), whatever its name:
        the metadata a replacement of the object must carry over. Inherited ones are left out."""
        names.check_any(name)
        return self._call("user_props", name, False, lambda: self._user_props(name))

    def bookmarks(self, dataset: str) -> dict[str, dict[str, str]]:
        """The bookmarks of one dataset: name (`dataset#mark`) -> {"guid", "createtxg"}, both
        the bookmarked snapshot's. A dataset that does not exist is NotFound."""
        names.check_dataset(dataset)
        return self._call("bookmarks", dataset, False, lambda: self._bookmarks(dataset))

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
    def _promote(self, name: str) -> None: ...
    @abstractmethod
    def _rename(self, old: str, new: str) -> None: ...
    @abstractmethod
    def _destroy(self, name: str) -> None: ...
    @abstractmethod
    def _destroy_snapshots(self, snaps: list[str], defer: bool) -> None: ...
    @abstractmethod
    def _bookmark(self, snapshot: str, bookmark: str) -> None: ...
    @abstractmethod
    def _destroy_bookmarks(self, marks: list[str]) -> None: ...
    @abstractmethod
    def _bookmarks(self, dataset: str) -> dict[str, dict[str, str]]: ...
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
    def _holds(self, snapshot: str) -> set[str]: ...
