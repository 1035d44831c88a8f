"""The real ZFS backend: mutations through pyzfs (libzfs_core), reads and the few calls
libzfs_core lacks (property writes, listings) through the zfs CLI with argv lists, never a shell.
"""
from __future__ import annotations

import os
import time

from zfsaga.steps.zfs import channel, names, process
from zfsaga.steps.zfs.errors import (AlreadyExists, Busy, HasDependents, NotFound, ZfsError,
                                     ZfsFailure, ZfsUnavailable, from_cli, from_lzc)
from zfsaga.steps.zfs.checks import is_user_prop
from zfsaga.steps.zfs.interface import Prop, Zfs, ZfsHooks



def zfs_bin() -> str:
    # Read per call, never at import: a warm server's child takes the call's environment.
    return os.environ.get("ZFSAGA_ZFS_BIN", "/sbin/zfs")


def zpool_bin() -> str:
    return os.environ.get("ZFSAGA_ZPOOL_BIN", "/sbin/zpool")


CLI_TIMEOUT = 120.0  # a zfs command waits for a txg sync; far longer means something is stuck
_NUMERIC_NATIVE = {"volsize", "volblocksize", "refreservation"}


def _b(s: str) -> bytes:
    return s.encode()


def _props_nvlist(props: dict[str, str]) -> dict[bytes, object]:
    return {_b(k): (int(v) if k in _NUMERIC_NATIVE else _b(v)) for k, v in props.items()}


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _number(raw: object) -> str:
    """A bookmark property as the ioctl returns it: {value: n} (dsl_prop_nvlist_add_uint64)."""
    if isinstance(raw, dict):
        raw = raw[b"value"]
    return str(int(raw))


def _source(raw: str) -> str:
    if raw.startswith("inherited"):
        return "inherited"
    return "none" if raw == "-" else raw


def _rows(out: str, fields: int, *, source: bool = False) -> list[list[str]]:
    """The rows of `zfs get -H` output, each split into its `fields` tab-separated fields; with
    `source`, the last field is the source, printed after the value.

    Split on newlines only: `str.splitlines` also splits on \\r, \\v, \\f, \\x1c-\\x1e,
    \\x85, \\u2028 and \\u2029, any of which a value may hold. The value is the one field
    that can hold a tab, so it is split around from both ends. zfsaga never stores a tab or a
    newline (steps/meta.py encodes them); a value someone else stored with a newline makes
    rows of the wrong width, which are skipped: that property reads as unset, and the rest of
    the listing stays readable."""
    rows = []
    for line in out.split("\n"):
        if source:
            *head, rest = line.split("\t", fields - 2)
            value, sep, last = rest.rpartition("\t")
            row = [*head, value, last] if sep and len(head) == fields - 2 else []
        else:
            row = line.split("\t", fields - 1)
        if len(row) == fields:
            rows.append(row)
    return rows


def _parse_all(out: str, props: list[str], names_: list[str] = ()
               ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]:
    """`zfs get -o name,property,value,source all` output, per object: the requested properties
    (native or user, with their sources; one `all` does not print for a type, such as volsize
    of a filesystem, reads as unset) and every local user property.

    One pass over the lines, and a row's value and source read only when it is kept: `all`
    prints some 45 native properties per volume and 30 per snapshot, of which a listing
    (SR.ls) wants five, so most rows stop at their property's name (building every row
    first, the parse was 2.5x this one's work at 10,000 VDIs, 4x with the collector running).
    A row is read as `_rows` reads it (tests/test_sr_scale.py compares them)."""
    wanted = frozenset(props)
    seen: dict[str, tuple[dict[str, Prop], dict[str, str]]] = {n: ({}, {}) for n in names_}
    current, native, user = None, {}, {}
    for line in out.split("\n"):
        row = line.split("\t", 2)
        if len(row) != 3:
            continue
        ds, prop, rest = row
        if "\t" not in rest:  # no source field: a row of the wrong width
            continue
        if ds != current:  # rows come grouped by object: one lookup per object, not per row
            current = ds
            native, user = seen.setdefault(ds, ({}, {}))
        mine = ":" in prop
        if not mine and prop not in wanted:
            continue
        value, _, raw = rest.rpartition("\t")
        src = _source(raw)
        if prop in wanted:
            native[prop] = Prop(None if value == "-" and src == "none" else value, src)
        if mine and src == "local":
            user[prop] = value
    unset = Prop(None, "none")
    return {ds: ({p: native.get(p, unset) for p in props}, user)
            for ds, (native, user) in seen.items()}


class RealZfs(Zfs):
    """ZFS on this host (needs /dev/zfs: a real ZFS host, an XCP-ng dom0 or the test guest).

    `in_process`: this process mutates, so it loads pyzfs anyway; then its reads of a few
    objects and its writes of user properties run as channel programs through pyzfs, not as
    `zfs` processes (steps/zfs/channel.py says why and what). Listings stay with the CLI."""

    def __init__(self, hooks: ZfsHooks | None = None, *, in_process: bool = False,
                 listings_in_process: bool = False) -> None:
        super().__init__(hooks)
        self.in_process = in_process or listings_in_process
        #: An SR's whole listing as one channel program too (a warm server's child, where
        #: pyzfs is loaded already: plugin/context.py says when).
        self.listings_in_process = listings_in_process
        if not os.path.exists("/dev/zfs"):
            raise ZfsUnavailable("/dev/zfs", "no ZFS kernel module on this host "
                                 "(run the real-ZFS tier through the guest: make test)")

    @property
    def _lzc(self):
        """pyzfs, imported at the first mutation: its cffi bindings cost several times a bare
        interpreter's start (0.1 s here, seconds in the emulated guest), and read-only verbs
        (Volume.stat before every datapath call, SR.ls, SR.stat) never mutate."""
        import libzfs_core

        return libzfs_core

    def version(self) -> str:
        return "real " + self._run(["version"], "version").replace("\n", " ").strip()

    # -- plumbing ----------------------------------------------------------------------------
    def _lzc_call(self, name: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._lzc.exceptions.ZFSError as exc:
            raise from_lzc(exc, name) from None

    def _run(self, args: list[str], name: str, binary: str | None = None) -> str:
        proc = self._process(args, name, binary)
        if proc.returncode != 0:
            raise from_cli(name, proc.stderr)
        return proc.stdout

    def _process(self, args: list[str], name: str,
                 binary: str | None = None) -> process.Finished:
        """One CLI process, bounded; its exit status is the caller's to read (`_run`, or a
        command whose non-zero exit can still carry an answer)."""
        binary = binary or zfs_bin()
        try:
            return process.run([binary, *args], CLI_TIMEOUT)
        except process.TimedOut:
            # Outcome unknown: the step's probe decides whether it happened.
            raise Busy(name, f"{os.path.basename(binary)} {args[0]} timed out after "
                             f"{CLI_TIMEOUT:.0f}s") from None

    # -- mutations ---------------------------------------------------------------------------
    def _create_zvol(self, name, size, sparse, volblocksize, props):
        nv = _props_nvlist(props)
        nv[b"volsize"] = size
        if volblocksize:
            nv[b"volblocksize"] = volblocksize
        if not sparse:
            # libzfs_core cannot compute the CLI's metadata overhead; reserve the volume size.
            nv[b"refreservation"] = size
        self._lzc_call(name, self._lzc.lzc_create, _b(name), ds_type="zvol", props=nv)

    def _create_filesystem(self, name, props):
        self._lzc_call(name, self._lzc.lzc_create, _b(name), ds_type="zfs",
                       props=_props_nvlist(props))

    def _snapshot(self, snaps, props):
        self._lzc_call(snaps[0], self._lzc.lzc_snapshot, [_b(s) for s in snaps],
                       props=_props_nvlist(props))

    def _clone(self, snapshot, target, props, reservation):
        nv = _props_nvlist(props)
        if reservation is not None:
            nv[b"refreservation"] = reservation
        try:
            self._lzc_call(target, self._lzc.lzc_clone, _b(target), _b(snapshot), props=nv)
        except AlreadyExists:
            raise
        except ZfsError:
            # ZFS 2.1.11 makes the clone, then sets its properties in a transaction of their
            # own; when that fails (a reservation the pool cannot hold: ENOSPC) it returns the
            # error and keeps the clone, tagged and unreserved (observed in the guest). The
            # call did not fail EEXIST, so the name was free: what is there now is this call's
            # own, and it goes with the error. (lzc_create cleans up after itself.)
            if self._exists(target):
                from zfsaga.steps.zfs.retry import retry_transient

                retry_transient(lambda: self._destroy(target))  # a new zvol's minor: busy
            raise

    def _promote(self, name):
        origin = self._get_props(name, ["origin"])["origin"].value or ""
        self._lzc_call(name, self._lzc.lzc_promote, _b(name))
        # OpenZFS 2.1 moves the snapshots but not their /dev/zvol nodes (snapdev=visible): a
        # snapshot VDI's read-only device would be missing at its new name. Setting snapdev
        # again makes ZFS create the minors of every snapshot as named now; the value set is
        # the one in effect, so a crash in between changes nothing a reader sees.
        for dataset in (name, origin.partition("@")[0]):
            if dataset:
                self._refresh_snapshot_devices(dataset)

    def _refresh_snapshot_devices(self, name):
        got = self._get_props(name, ["snapdev"])["snapdev"]
        if got.value != "visible":
            return
        self._run(["set", "snapdev=visible", name], name)
        if got.source != "local":
            self._run(["inherit", "snapdev", name], name)

    def _rename(self, old, new):
        self._lzc_call(old, self._lzc.lzc_rename, _b(old), _b(new))

    def _destroy(self, name):
        try:
            self._lzc_call(name, self._lzc.lzc_destroy, _b(name))
        except (Busy, AlreadyExists) as exc:
            # The kernel says EBUSY/EEXIST both for "has snapshots or children" (permanent) and
            # for "in use" (transient): the listing tells which.
            if len(self._run(["list", "-H", "-o", "name", "-t", "all", "-d", "1", name],
                             name).split()) > 1:
                raise HasDependents(name, "dataset has snapshots or children") from None
            raise exc

    def _destroy_snapshots(self, snaps, defer):
        try:
            self._lzc.lzc_destroy_snaps([_b(s) for s in snaps], defer)
        except self._lzc.exceptions.ZFSError as exc:
            raise from_lzc(exc, snaps[0], deferred=defer) from None

    def _mount(self, name):
        self._run(["mount", name], name)

    def _bookmark(self, snapshot, bookmark):
        self._lzc_call(bookmark, self._lzc.lzc_bookmark, {_b(bookmark): _b(snapshot)})

    def _destroy_bookmarks(self, marks):
        # Missing bookmarks are no error to the kernel: they are already gone.
        self._lzc_call(marks[0], self._lzc.lzc_destroy_bookmarks, [_b(m) for m in marks])

    def _bookmarks(self, dataset):
        if not self._exists(dataset):
            raise NotFound(dataset, "dataset does not exist")
        got = self._lzc_call(dataset, self._lzc.lzc_get_bookmarks, _b(dataset),
                             [b"guid", b"createtxg"])
        marks = {f"{dataset}#{_text(m)}": {"guid": _number(v[b"guid"]),
                                          "createtxg": _number(v[b"createtxg"])}
                 for m, v in got.items()}
        return dict(sorted(marks.items(), key=lambda kv: int(kv[1]["createtxg"])))

    def _set_props(self, name, props):
        if self.in_process and all(is_user_prop(key) for key in props):
            channel.set_user_props(self._lzc, name, props)
            return
        # One `zfs set` with every assignment: libzfs sends them in one ioctl, all or none.
        self._run(["set", *(f"{key}={value}" for key, value in props.items()), name], name)

    def _raise_counter(self, name, prop, value):
        if self.in_process:  # one channel program: read and set in one transaction
            channel.raise_counter(self._lzc, name, prop, value)
            return
        super()._raise_counter(name, prop, value)  # the CLI: read, then `zfs set`

    def _inherit(self, name, prop):
        self._run(["inherit", prop, name], name)

    def _hold(self, snapshot, tag):
        missing = self._lzc_call(snapshot, self._lzc.lzc_hold, {_b(snapshot): _b(tag)})
        if missing:
            raise NotFound(snapshot, "snapshot does not exist")

    def _release(self, snapshot, tag):
        # lzc_release does not raise for a missing snapshot or tag: it returns them.
        missing = self._lzc_call(snapshot, self._lzc.lzc_release, {_b(snapshot): [_b(tag)]})
        if missing:
            what = "no hold " + tag if b"#" in missing[0] else "snapshot does not exist"
            raise NotFound(snapshot, what)

    # -- pools: libzfs_core has no pool calls, so these are zpool processes --------------------
    def _create_pool(self, pool, devices, layout, props, ashift):
        args = ["create"]
        if ashift:
            args += ["-o", f"ashift={ashift}"]
        for key, value in sorted(props.items()):
            args += ["-O", f"{key}={value}"]
        # No -f, ever: zpool then refuses a device holding a filesystem or a pool.
        self._run([*args, pool, *([] if layout == "stripe" else [layout]), *devices], pool,
                  zpool_bin())

    def _import_pool(self, pool_guid, devices):
        where = [arg for dev in devices if os.path.exists(dev) for arg in ("-d", dev)]
        try:
            self._run(["import", *where, pool_guid], pool_guid, zpool_bin())
        except NotFound:
            if not where:
                raise
            # Device names can change across reboots: then zpool's own search finds it.
            self._run(["import", pool_guid], pool_guid, zpool_bin())

    def _export_pool(self, pool):
        self._run(["export", pool], pool, zpool_bin())

    def _destroy_pool(self, pool):
        self._run(["destroy", pool], pool, zpool_bin())

    def _importable_pools(self, devices):
        where = [arg for dev in devices for arg in ("-d", dev)]
        proc = self._process(["import", *where], devices[0], zpool_bin())
        if proc.returncode != 0 and "no pools available" not in proc.stderr:
            raise from_cli(devices[0], proc.stderr)
        found: list[dict[str, str]] = []
        for line in proc.stdout.splitlines():  # "   pool: NAME", "     id: GUID", ...
            key, sep, value = line.strip().partition(": ")
            if not sep:
                continue
            if key == "pool":
                found.append({"name": value.strip()})
            elif key == "id" and found:
                found[-1]["guid"] = value.strip()
            elif key == "state" and found:
                found[-1]["state"] = value.strip()
        return [p for p in found if "guid" in p]

    def _imported_pools(self):
        return [n for n in self._run(["list", "-H", "-o", "name"], "-", zpool_bin()).splitlines()
                if n]

    def _pool_guid(self, pool):
        try:
            out = self._run(["list", "-Hp", "-o", "guid", pool], pool, zpool_bin())
            return out.strip() or None
        except NotFound:
            return None

    # -- queries -----------------------------------------------------------------------------
    def _reads_here(self, props: list[str]) -> bool:
        return self.in_process and not channel.CLI_ONLY.intersection(props)

    def _described(self, name: str, props: list[str]) -> tuple[dict[str, Prop], dict[str, str]]:
        got = channel.describe(self._lzc, [name], props)
        if name not in got:
            raise NotFound(name, "dataset does not exist")
        return got[name]

    def _exists(self, name):
        return bool(self._lzc.lzc_exists(_b(name)))

    def _get(self, args: list[str], name: str, props: list[str]) -> dict[str, dict[str, Prop]]:
        out = self._run(["get", "-Hp", *args, "-o", "name,property,value,source",
                         ",".join(props), name], name)
        tree: dict[str, dict[str, Prop]] = {}
        for ds, prop, value, source in _rows(out, 4, source=True):
            src = _source(source)
            tree.setdefault(ds, {})[prop] = Prop(None if value == "-" and src == "none" else value,
                                                 src)
        return tree

    def _get_props(self, name, props):
        if self._reads_here(props):
            return self._described(name, props)[0]
        return self._get([], name, props).get(name, {})

    def _list_tree(self, root, props):
        return self._get(["-r", "-t", "filesystem,volume,snapshot"], root, props)

    def _user_props(self, name):
        if self.in_process:
            return self._described(name, [])[1]
        out = self._run(["get", "-Hp", "-s", "local", "-o", "property,value", "all", name], name)
        return {prop: value for prop, value in _rows(out, 2) if ":" in prop}

    def _pool_health(self, pool):
        return self._run(["list", "-H", "-o", "health", pool], pool, zpool_bin()).strip()

    def _pool_ashift(self, pool):
        out = self._run(["get", "-Hp", "-o", "value", "ashift", pool], pool, zpool_bin())
        return int(out.strip() or 0)

    def _describe(self, name, props):
        if self._reads_here(props):
            return self._described(name, props)
        out = self._run(["get", "-Hp", "-o", "name,property,value,source", "all", name], name)
        return _parse_all(out, props, [name])[name]

    def _describe_many(self, names_, props):
        if self._reads_here(props):
            return channel.describe(self._lzc, names_, props)
        # One process for all: `zfs get` prints what exists and complains of the rest (exit 1).
        proc = self._process(["get", "-Hp", "-o", "name,property,value,source", "all",
                              *names_], names_[0])
        if proc.returncode != 0:
            for line in proc.stderr.splitlines():
                if line.strip() and not line.rstrip().endswith("dataset does not exist"):
                    raise from_cli(names_[0], proc.stderr)
        return _parse_all(proc.stdout, props)

    def _describe_tree(self, root, props):
        if self.listings_in_process and self._reads_here(props):
            try:
                return channel.describe_tree(self._lzc, root, props)
            except ZfsFailure:
                pass  # past the program's limits (a very large SR): ZFS's own walk reads it
        out = self._run(["get", "-r", "-Hp", "-t", "filesystem,volume,snapshot", "-o",
                         "name,property,value,source", "all", root], root)
        return _parse_all(out, props)

    def _tree_user_props(self, root):
        out = self._run(["get", "-r", "-Hp", "-s", "local", "-t", "filesystem,volume,snapshot",
                         "-o", "name,property,value", "all", root], root)
        tree: dict[str, dict[str, str]] = {}
        for name, prop, value in _rows(out, 3):
            if ":" in prop:
                tree.setdefault(name, {})[prop] = value
        return tree

    def _holds(self, snapshot):
        if not self._exists(snapshot):
            raise NotFound(snapshot, "snapshot does not exist")
        held = self._lzc_call(snapshot, self._lzc.lzc_get_holds, _b(snapshot))
        return {t.decode() for t in held}

    # -- devices -----------------------------------------------------------------------------
    def device_path(self, name: str, timeout: float = 30.0) -> str:
        """The /dev/zvol link of a zvol or snapshot, waiting for udev to make it (it appears
        asynchronously after create)."""
        names.check_any(name)
        path = "/dev/zvol/" + name
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise ZfsUnavailable(name, f"{path} did not appear within {timeout:.0f}s")
            try:
                process.run(["udevadm", "settle", "--timeout=5"], 30.0)
            except process.TimedOut:
                pass  # the loop's own deadline decides
            time.sleep(0.1)
        return path
