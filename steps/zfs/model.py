"""An in-memory model of ZFS, for fast and exhaustive tests. It follows OpenZFS 2.1 semantics
for what the plugin relies on (origins, promote, rename, destroy rules, deferred destroy, holds,
guid and createtxg, user properties and their sources) and is trusted only as far as the
differential test against real ZFS reaches (tests/test_zfs_differential.py).
"""
from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field

from zfsaga.steps.zfs import names
from zfsaga.steps.zfs.errors import (AlreadyExists, DeviceInUse, HasDependents, InvalidName,
                                     InvalidValue, NotAClone, NotFound, SnapshotHeld)
from zfsaga.steps.zfs.checks import DEFAULT_VOLBLOCKSIZE, NATIVE_VALUES
from zfsaga.steps.zfs.interface import Prop, Zfs, ZfsHooks

_INHERITABLE_NATIVE = {"snapdev": "hidden", "compression": "off", "sync": "standard",
                       "logbias": "latency", "primarycache": "all"}


@dataclass(eq=False)
class _Obj:
    name: str
    type: str  # filesystem | volume | snapshot
    guid: int
    createtxg: int
    local: dict[str, str] = field(default_factory=dict)
    volsize: int | None = None
    volblocksize: int | None = None
    refreservation: int = 0
    origin: "_Obj | None" = None  # datasets: the snapshot they were cloned from
    dataset: "_Obj | None" = None  # snapshots: the dataset they belong to
    holds: set[str] = field(default_factory=set)
    defer_destroy: bool = False
    mounted: bool = False  # filesystems: lzc_create leaves them unmounted
    #: Datasets: their bookmarks, by the name after `#`: (guid, createtxg) of the snapshot
    #: each bookmarked. They follow the dataset on rename and go with it on destroy.
    bookmarks: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Seconds since the epoch, as ZFS's `creation` (the time its txg synced).
    creation: int = field(default_factory=lambda: int(time.time()))


class ModelZfs(Zfs):
    """ZFS pools in a dict. `pools` names the pools that exist (each a root filesystem)."""

    holds_data = False  # no blocks: no send stream, no changed blocks

    def __init__(self, pools: tuple[str, ...] = ("tank",), hooks: ZfsHooks | None = None,
                 seed: int = 0) -> None:
        super().__init__(hooks)
        self._objs: dict[str, _Obj] = {}
        self._txg = itertools.count(100)
        self._rand = random.Random(seed)
        self._health: dict[str, str] = {}
        #: Imported pools: name -> guid, devices, ashift; exported ones by guid, with their
        #: datasets (an exported pool's labels stay on its devices).
        self._pools: dict[str, dict] = {p: {"guid": str(self._guid()), "devices": (),
                                            "ashift": 0} for p in pools}
        self._exported: dict[str, dict] = {}
        for pool in pools:
            self._objs[pool] = _Obj(pool, "filesystem", self._guid(), next(self._txg),
                                    mounted=True)

    def version(self) -> str:
        return "model (OpenZFS 2.1 semantics)"

    # -- helpers -----------------------------------------------------------------------------
    def _guid(self) -> int:
        return self._rand.getrandbits(63) | 1

    def _get(self, name: str) -> _Obj:
        obj = self._objs.get(name)
        if obj is None:
            raise NotFound(name, "dataset does not exist")
        return obj

    def _snapshots_of(self, ds: _Obj) -> list[_Obj]:
        return sorted((o for o in self._objs.values() if o.dataset is ds),
                      key=lambda o: o.createtxg)

    def _children_of(self, ds: _Obj) -> list[_Obj]:
        return [o for o in self._objs.values()
                if o.type != "snapshot" and names.parent_of(o.name) == ds.name]

    def _clones_of(self, snap: _Obj) -> list[_Obj]:
        return [o for o in self._objs.values() if o.origin is snap]

    def _new_dataset(self, name: str, kind: str) -> _Obj:
        if name in self._objs:
            raise AlreadyExists(name, "dataset already exists")
        parent = names.parent_of(name)
        if parent is None:
            raise InvalidName(name, "cannot create a pool's root dataset")
        parent_obj = self._get(parent) if parent in self._objs else None
        if parent_obj is None:
            raise NotFound(name, "parent does not exist")
        if parent_obj.type != "filesystem":
            raise InvalidName(name, "parent is not a filesystem")
        return _Obj(name, kind, self._guid(), next(self._txg))

    def _drop_snapshot(self, snap: _Obj) -> None:
        del self._objs[snap.name]

    def _maybe_reap(self, snap: _Obj | None) -> None:
        # A deferred-destroy snapshot goes when its last clone and hold are gone.
        if (snap is not None and snap.defer_destroy and snap.name in self._objs
                and not snap.holds and not self._clones_of(snap)):
            self._drop_snapshot(snap)

    # -- mutations ---------------------------------------------------------------------------
    def _create_zvol(self, name, size, sparse, volblocksize, props):
        obj = self._new_dataset(name, "volume")
        obj.volsize = size
        obj.volblocksize = volblocksize or DEFAULT_VOLBLOCKSIZE
        obj.refreservation = 0 if sparse else size
        obj.local.update(props)
        self._objs[name] = obj

    def _create_filesystem(self, name, props):
        obj = self._new_dataset(name, "filesystem")
        obj.local.update(props)
        self._objs[name] = obj

    def _create_pool(self, pool, devices, layout, props, ashift):
        if pool in self._pools:
            raise AlreadyExists(pool, f"cannot create '{pool}': pool already exists")
        for state, pools in (("active", self._pools.items()),
                             ("exported", ((p["name"], p) for p in self._exported.values()))):
            for name, info in pools:
                for dev in devices:
                    if dev in info["devices"]:
                        raise DeviceInUse(pool, f"{dev} is part of {state} pool '{name}'")
        self._pools[pool] = {"guid": str(self._guid()), "devices": tuple(devices),
                             "ashift": ashift or 0}
        root = _Obj(pool, "filesystem", self._guid(), next(self._txg), mounted=True)
        root.local.update(props)
        self._objs[pool] = root

    def _pool_objs(self, pool: str) -> list[str]:
        return [n for n in self._objs if n == pool or n.startswith((pool + "/", pool + "@"))]

    def _export_pool(self, pool):
        if pool not in self._pools:
            raise NotFound(pool, f"cannot open '{pool}': no such pool")
        info = self._pools.pop(pool)
        objs = {n: self._objs.pop(n) for n in self._pool_objs(pool)}
        self._exported[info["guid"]] = {**info, "name": pool, "objs": objs}

    def _import_pool(self, pool_guid, devices):
        info = self._exported.get(pool_guid)
        if info is None:
            raise NotFound(pool_guid, f"cannot import '{pool_guid}': no such pool available")
        if info["name"] in self._pools:
            raise AlreadyExists(pool_guid, "cannot import: a pool with that name already "
                                           "exists")
        del self._exported[pool_guid]
        self._objs.update(info.pop("objs"))
        self._pools[info.pop("name")] = info

    def _destroy_pool(self, pool):
        if pool not in self._pools:
            raise NotFound(pool, f"cannot open '{pool}': no such pool")
        del self._pools[pool]
        for name in self._pool_objs(pool):
            del self._objs[name]

    def _importable_pools(self, devices):
        return [{"name": info["name"], "guid": guid, "state": "ONLINE"}
                for guid, info in sorted(self._exported.items())
                if set(info["devices"]) & set(devices)]

    def _imported_pools(self):
        return list(self._pools)

    def _pool_guid(self, pool):
        return self._pools[pool]["guid"] if pool in self._pools else None

    def _snapshot(self, snaps, props):
        pools = {names.pool_of(s) for s in snaps}
        if len(pools) > 1:
            raise InvalidName(snaps[0], "snapshots must all be in one pool")
        if len({names.dataset_of(s) for s in snaps}) != len(snaps):
            raise InvalidName(snaps[0], "two snapshots of one dataset in one call")
        for s in snaps:  # ZFS looks up every dataset before it checks for a collision
            self._get(names.dataset_of(s))
        for s in snaps:
            if s in self._objs:
                raise AlreadyExists(s, "snapshot already exists")
        txg = next(self._txg)
        for s in snaps:
            ds = self._objs[names.dataset_of(s)]
            self._objs[s] = _Obj(s, "snapshot", self._guid(), txg, dict(props),
                                 volsize=ds.volsize, volblocksize=ds.volblocksize, dataset=ds)

    def _clone(self, snapshot, target, props, reservation):
        if target in self._objs:  # ZFS checks the target before it looks up the origin
            raise AlreadyExists(target, "dataset already exists")
        snap = self._get(snapshot)
        obj = self._new_dataset(target, snap.dataset.type)
        obj.origin = snap
        obj.volsize, obj.volblocksize = snap.volsize, snap.volblocksize
        obj.refreservation = reservation or 0
        obj.local.update(props)
        self._objs[target] = obj

    def _promote(self, name):
        clone = self._get(name)
        if clone.type == "snapshot" or clone.origin is None:
            raise NotAClone(name, "not a cloned filesystem")
        point = clone.origin
        old = point.dataset
        moving = [s for s in self._snapshots_of(old) if s.createtxg <= point.createtxg]
        mine = {s.name.split("@")[1] for s in self._snapshots_of(clone)}
        for s in moving:
            if s.name.split("@")[1] in mine:
                raise AlreadyExists(name, f"snapshot {s.name} would collide")
        # ZFS moves the bookmarks no newer than the origin with the snapshots; newer ones stay
        # on the old head (dsl_dataset_promote_sync).
        marks = {m: v for m, v in old.bookmarks.items() if v[1] <= point.createtxg}
        for m in marks:
            if m in clone.bookmarks:
                raise AlreadyExists(name, f"bookmark {old.name}#{m} would collide")
        for m, v in marks.items():
            del old.bookmarks[m]
            clone.bookmarks[m] = v
        for s in moving:
            del self._objs[s.name]
            s.name = clone.name + "@" + s.name.split("@")[1]
            s.dataset = clone
            self._objs[s.name] = s
        clone.origin, old.origin = old.origin, point

    def _rename(self, old, new):
        obj = self._get(old)
        if obj.type == "snapshot":
            raise InvalidName(old, "use a dataset name")
        if old.split("/")[0] != new.split("/")[0]:
            raise InvalidName(new, "cannot rename across pools")
        if new in self._objs:
            raise AlreadyExists(new, "dataset already exists")
        parent = names.parent_of(new)
        if parent is None or parent not in self._objs:
            raise NotFound(new, "parent does not exist")
        if self._objs[parent].type != "filesystem":
            raise InvalidName(new, "parent is not a filesystem")
        moved = [o for o in self._objs.values()
                 if o.name == old or o.name.startswith(old + "/") or o.name.startswith(old + "@")]
        for o in moved:
            del self._objs[o.name]
        for o in moved:
            o.name = new + o.name[len(old):]
            self._objs[o.name] = o

    def _destroy(self, name):
        obj = self._get(name)
        if obj.type == "snapshot":
            raise InvalidName(name, "use destroy_snapshots for snapshots")
        if names.parent_of(name) is None:
            raise InvalidName(name, "cannot destroy a pool's root dataset")
        if self._snapshots_of(obj) or self._children_of(obj):
            raise HasDependents(name, "dataset has snapshots or children")
        del self._objs[name]
        self._maybe_reap(obj.origin)

    def _destroy_snapshots(self, snaps, defer):
        # libzfs_core takes the names as nvlist keys: a name given twice counts once.
        present = [self._objs[s] for s in dict.fromkeys(snaps) if s in self._objs]
        if not defer:
            # The kernel's destroy check looks at user holds before clones (EBUSY, then EEXIST).
            for s in present:
                if s.holds:
                    raise SnapshotHeld(s.name, "snapshot is held")
                if self._clones_of(s):
                    raise HasDependents(s.name, "snapshot has dependent clones")
        for s in present:
            if self._clones_of(s) or s.holds:
                s.defer_destroy = True
            else:
                self._drop_snapshot(s)

    def _bookmark(self, snapshot, bookmark):
        snap = self._get(snapshot)
        dataset, mark = bookmark.split("#")
        ds = self._get(dataset)
        if mark in ds.bookmarks:
            raise AlreadyExists(bookmark, "bookmark already exists")
        ds.bookmarks[mark] = (snap.guid, snap.createtxg)

    def _destroy_bookmarks(self, marks):
        for name in marks:
            dataset, mark = name.split("#")
            obj = self._objs.get(dataset)
            if obj is not None:
                obj.bookmarks.pop(mark, None)

    def _bookmarks(self, dataset):
        obj = self._get(dataset)
        if obj.type == "snapshot":
            raise InvalidName(dataset, "a snapshot has no bookmarks")
        return {f"{obj.name}#{m}": {"guid": str(g), "createtxg": str(t)}
                for m, (g, t) in sorted(obj.bookmarks.items(), key=lambda kv: kv[1][1])}

    def _mount(self, name):
        obj = self._get(name)
        if obj.type != "filesystem":
            raise InvalidValue(name, "operation not applicable to datasets of this type")
        if obj.mounted:
            raise AlreadyExists(name, "filesystem already mounted")
        obj.mounted = True

    def _set_props(self, name, props):
        obj = self._get(name)
        # Like one `zfs set` ioctl: every assignment is checked before any is applied.
        for key, value in props.items():
            if key in ("volsize", "refreservation") and obj.type != "volume":
                raise InvalidValue(name, f"'{key}' does not apply to datasets of this type")
            if key == "volsize" and int(value) % obj.volblocksize:
                raise InvalidValue(value, "volume size must be a multiple of volblocksize")
            if key == "snapdev" and value not in ("hidden", "visible"):
                raise InvalidValue(value, "bad snapdev value")
            if key in NATIVE_VALUES and value not in NATIVE_VALUES[key]:
                raise InvalidValue(value, f"bad {key} value")
            if key in _INHERITABLE_NATIVE and obj.type == "snapshot":
                raise InvalidValue(name, f"{key} cannot be set on a snapshot")
        for key, value in props.items():
            if key == "volsize":
                obj.volsize = int(value)
            elif key == "refreservation":
                obj.refreservation = int(value)
            else:
                obj.local[key] = value

    def _inherit(self, name, prop):
        self._get(name).local.pop(prop, None)

    def _raise_counter(self, name, prop, value):
        # Read and set in the one call (the shared model's calls run under its file lock).
        now = self._get(name).local.get(prop)
        if now is None or not now.isdigit() or int(now) < value:
            self._set_props(name, {prop: str(value)})

    def _hold(self, snapshot, tag):
        snap = self._get(snapshot)
        if tag in snap.holds:
            raise AlreadyExists(snapshot, f"tag {tag} already exists")
        snap.holds.add(tag)

    def _release(self, snapshot, tag):
        snap = self._get(snapshot)
        if tag not in snap.holds:
            raise NotFound(snapshot, f"no hold {tag}")
        snap.holds.discard(tag)
        self._maybe_reap(snap)

    # -- queries -----------------------------------------------------------------------------
    def _exists(self, name):
        return name in self._objs

    def _lookup(self, obj: _Obj, prop: str) -> Prop:
        if ":" in prop or prop in _INHERITABLE_NATIVE:
            if prop in obj.local:
                return Prop(obj.local[prop], "local")
            cur = obj.dataset if obj.type == "snapshot" else self._objs.get(
                names.parent_of(obj.name) or "")
            while cur is not None:
                if prop in cur.local:
                    return Prop(cur.local[prop], "inherited")
                cur = self._objs.get(names.parent_of(cur.name) or "")
            if prop in _INHERITABLE_NATIVE:
                return Prop(_INHERITABLE_NATIVE[prop], "default")
            return Prop(None, "none")
        snap = obj.type == "snapshot"
        if prop == "type":
            return Prop(obj.type, "none")
        if prop == "guid":
            return Prop(str(obj.guid), "none")
        if prop == "createtxg":
            return Prop(str(obj.createtxg), "none")
        if prop == "creation":
            return Prop(str(obj.creation), "none")
        if prop == "origin":
            return Prop(obj.origin.name if obj.origin else None, "none")
        if prop == "volsize":
            if obj.volsize is None:
                return Prop(None, "none")
            # Real ZFS reports a zvol snapshot's volsize as local too (its own ZAP entry).
            return Prop(str(obj.volsize), "local")
        if prop == "volblocksize":
            if obj.volblocksize is None:
                return Prop(None, "none")
            return Prop(str(obj.volblocksize), "none" if snap else "default")
        if prop == "refreservation":
            if snap:
                return Prop(None, "none")
            return Prop(str(obj.refreservation), "local" if obj.refreservation else "default")
        if prop == "defer_destroy":
            return Prop(("on" if obj.defer_destroy else "off") if snap else None, "none")
        if prop == "mountpoint":  # default mountpoints only: /<name> for filesystems
            return Prop("/" + obj.name if obj.type == "filesystem" else None,
                        "default" if obj.type == "filesystem" else "none")
        if prop == "mounted":
            return Prop(("yes" if obj.mounted else "no") if obj.type == "filesystem" else None,
                        "none")
        if prop in ("used", "available", "referenced"):
            return Prop(None, "none")  # space accounting is not simulated
        if prop == "userrefs":
            return Prop(str(len(obj.holds)) if snap else None, "none")
        raise InvalidValue(prop, "unknown property")

    def _get_props(self, name, props):
        obj = self._get(name)
        return {p: self._lookup(obj, p) for p in props}

    def _list_tree(self, root, props):
        self._get(root)
        inside = [o for o in self._objs.values() if names.is_within(root, o.name)]
        # zfs lists depth first: each dataset, then its snapshots, then its children.
        inside.sort(key=lambda o: (o.name.split("@")[0].split("/"), o.type == "snapshot",
                                   o.createtxg))
        return {o.name: {p: self._lookup(o, p) for p in props} for o in inside}

    def _user_props(self, name):
        return {k: v for k, v in self._get(name).local.items() if ":" in k}

    def _pool_ashift(self, pool):
        self._get(pool)
        return self._pools[pool]["ashift"]  # 0: unset, as `zpool create` leaves it

    def _pool_health(self, pool):
        self._get(pool)
        return self._health.get(pool, "ONLINE")

    def set_pool_health(self, pool: str, state: str) -> None:
        """Test hook: what the model's pool reports (a real pool's state comes from its
        devices)."""
        self._health[pool] = state

    def _describe(self, name, props):
        return self._get_props(name, props), self._user_props(name)

    def _describe_many(self, names_, props):
        return {n: self._describe(n, props) for n in names_ if n in self._objs}

    def _describe_tree(self, root, props):
        self._get(root)
        return {n: self._describe(n, props) for n in sorted(self._objs)
                if names.is_within(root, n)}

    def _tree_user_props(self, root):
        self._get(root)
        out = {}
        for o in self._objs.values():
            own = {k: v for k, v in o.local.items() if ":" in k}
            if own and names.is_within(root, o.name):
                out[o.name] = own
        return out

    def _holds(self, snapshot):
        return set(self._get(snapshot).holds)
