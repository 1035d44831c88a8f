"""Where a verb finds its SR: the `sr` string xapi hands back (the SR's dataset name), checked
to be a zfsaga SR, and for mutating verbs the engine over that SR's journal. Read-only verbs
stop at the SR: no journal, no lock, no engine import."""
from __future__ import annotations

import os

from zfsaga.plugin.deadline import lock_wait
from zfsaga.plugin.errors import InvalidArgument, SrNotAttached, VolumeDoesNotExist

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Any

    from zfsaga.steps.zfs.interface import Zfs


class Sr:
    """An SR found at xapi's `sr` string, and what the read that found it also saw (`seen`:
    objects described in the same call, so a verb on one volume pays for one `zfs get`).
    A plain class: every call is a new process, and dataclasses cost an import of inspect."""

    def __init__(self, zfs: "Zfs", name: str, guid: str,
                 seen: dict[str, tuple[dict, dict] | None] | None = None,
                 props: dict | None = None, user: dict[str, str] | None = None) -> None:
        self.zfs, self.name, self.guid = zfs, name, guid
        self.seen = seen or {}
        self.props = props or {}  # the SR dataset's own, from that read
        self.user = user  # the SR dataset's local user properties, when that read had them

    @property
    def key(self) -> str:
        from zfsaga.steps.srs import sr_key

        return sr_key(self.guid)

    def engine(self) -> Any:
        """The saga engine over this SR's journal (mutating verbs only). Finding the journal
        may make the pool's state filesystem (the one change outside a saga: location.py);
        it never marks a dataset as an SR."""
        from zfsaga.location import sr_state_dir
        from zfsaga.sagas.runner import open_engine

        state = sr_state_dir(self.zfs, self.name, create=True)
        return open_engine(self.zfs, state, lock_wait=lock_wait())

    def find(self, key: str, hint: str | None = None) -> tuple[str, dict, dict]:
        """(dataset, native, user properties) of the VDI with this key; Volume_does_not_exist
        otherwise. One read at home, whatever the SR's size; a snapshot a revert left on a
        retired head costs two more (the SR's index, then the snapshot). Only a key found in
        neither place (mid-revert, before recovery, a stale index, an unknown key) lists the
        SR, and then picks exactly as SR.ls does. `hint`: where the key was found before (a
        finder under a saga's lock, plugin/volume.py), read first: one read while the VDI is
        still there, and a retired or destroyed one is looked for as any unknown key is."""
        from zfsaga.plugin.volumes import (NATIVE, candidates, listed, no_collection, rank,
                                            settled)
        from zfsaga.steps.zfs import names
        from zfsaga.steps.zfs.errors import NotFound, ZfsError
        from zfsaga.steps.meta import KEY, index_prop

        missing = VolumeDoesNotExist(f"no volume {key!r} in SR {self.name}")
        try:
            volume, _, snap = key.partition("@")
            names.check_component(volume, "volume key")
            if snap:
                names.check_component(snap, "snapshot key")
            names.check_any(f"{self.name}/{key}")
        except ZfsError:
            raise missing from None

        def held_at(name: str) -> tuple[str, dict, dict] | None:
            if name in self.seen:
                found = self.seen.pop(name)
                if found is None:
                    return None
                native, user = found
            else:
                try:
                    native, user = self.zfs.describe(name, NATIVE)
                except (NotFound, ZfsError):
                    return None
            if listed(name, native, user) and user.get(KEY) == key \
                    and rank(self.name, name, key) is not None:
                return name, native, user
            return None

        if hint:
            found = held_at(hint)
            if found:
                return found
            self.seen[hint] = None  # read just now, and not this key's VDI: not read again
        found = held_at(f"{self.name}/{key}")
        if found:
            return found
        if snap:
            try:
                where = self.zfs.get_props(self.name, [index_prop(key)])[index_prop(key)].local
            except ZfsError:  # a key too long to have an index entry, so it has none
                where = None
            for name in candidates(self.name, key, where)[1:]:
                found = held_at(name)
                if found:
                    return found
            found = self.metadata_only(key)
            if found:
                return found
        with no_collection():
            tree = self.zfs.describe_tree(self.name, NATIVE)  # one read, as SR.ls makes
            natives = {name: got[0] for name, got in tree.items()}
            own = {name: got[1] for name, got in tree.items() if got[1]}
            for name, native, user in settled(self.name, natives, own):
                if user[KEY] == key:
                    return name, native, user
        raise missing

    def metadata_only(self, key: str) -> tuple[str, dict, dict] | None:
        """The metadata-only VDI `key` (Volume.data_destroy) as SR.ls shows it, or None: the
        SR's own properties hold it (one read, none when open_sr's read had them)."""
        from zfsaga.plugin.volumes import metadata_only
        from zfsaga.steps.meta import KEY, metadata_prop
        from zfsaga.steps.zfs.errors import ZfsError

        prop = metadata_prop(key)
        if self.user is None:
            try:
                self.user = self.zfs.user_props(self.name)
            except ZfsError:
                return None
        stored = self.user.get(prop)
        if stored is None:
            return None
        for found in metadata_only(self.name, {prop: stored}):
            if found[2].get(KEY) == key:
                return found
        return None


def reads_in_process() -> bool:
    """Whether a read-only verb reads through pyzfs (channel programs, no `zfs` process): only
    where pyzfs is loaded already, as in a warm server's child (plugin/server.py preloads it),
    where a read costs one ioctl instead of a process. A call run in-process (no server) never
    loads pyzfs for a read: the import costs more than the `zfs get` it would save.
    ZFSAGA_READS=cli keeps the CLI (the speed table measures both: bench/verbs.py)."""
    import sys

    return "libzfs_core" in sys.modules and os.environ.get("ZFSAGA_READS") != "cli"


def zfs(writes: bool = False) -> "Zfs":
    """The ZFS layer, with CI's fault switch (zfsaga/faults.py) when it is set. `writes`: the
    verb runs a saga, so its reads go through pyzfs, which it loads anyway (zfsaga/backend.py);
    so do a read-only verb's, listings too, where pyzfs is loaded already (reads_in_process)."""
    from zfsaga.backend import open_zfs

    served = reads_in_process()
    hooks = None
    if os.environ.get("ZFSAGA_FAULTS") or os.environ.get("ZFSAGA_FAULTS_FILE"):
        from zfsaga.faults import FaultHooks, Faults

        hooks = FaultHooks(Faults.from_env())
    return open_zfs(hooks, in_process=writes or served, listings_in_process=served)


def _check_sr_name(sr: str) -> None:
    """Invalid_argument for an `sr` no SR.attach of ours can have returned (before any read)."""
    from zfsaga.steps.zfs import names
    from zfsaga.steps.zfs.errors import ZfsError

    try:
        names.check_dataset(sr)
    except ZfsError:
        raise InvalidArgument(f"{sr!r} is not an SR this plugin returned") from None


def open_sr(sr: str, key: str | None = None, extra: tuple[str, ...] = (),
            writes: bool = False) -> Sr:
    """The SR behind xapi's `sr` string; Sr_not_attached when it is not a zfsaga SR now. With
    `key`, the key's home (`<sr>/<key>`) is described in the same `zfs get` (Volume.stat is one
    process of ZFS's); `extra`: more of the SR's own properties to read in it. `writes`: the
    verb runs a saga (see `zfs`)."""
    from zfsaga.plugin.volumes import NATIVE
    from zfsaga.steps import srs
    from zfsaga.steps.zfs import names
    from zfsaga.steps.zfs.errors import ZfsError

    _check_sr_name(sr)
    home = None
    if key:
        try:
            home = names.check_any(f"{sr}/{key}")
        except ZfsError:
            home = None  # not a name ZFS could hold: find() says Volume_does_not_exist
    backend = zfs(writes)
    wanted = list(dict.fromkeys([*NATIVE, "guid", srs.SR_MARK, *extra]))
    try:
        got = backend.describe_many([sr, *([home] if home else [])], wanted)
        if sr not in got:
            raise SrNotAttached(f"{sr}: no such SR")
        ident = srs.identity_from(sr, got[sr][0])
    except ZfsError as exc:
        raise SrNotAttached(f"{sr}: {exc.detail or exc}") from None
    seen = {home: got.get(home)} if home else {}  # None: read, and not there
    return Sr(backend, sr, ident.guid, seen, got[sr][0], got[sr][1])


def open_sr_tree(sr: str) -> tuple[Sr, dict[str, tuple[dict, dict]]]:
    """The SR and everything in it, described in one `zfs get -r` (SR.ls): the SR's identity
    is read from the same output as its volumes."""
    from zfsaga.plugin.volumes import NATIVE
    from zfsaga.steps import srs
    from zfsaga.steps.zfs.errors import ZfsError

    _check_sr_name(sr)
    backend = zfs()
    try:
        tree = backend.describe_tree(sr, [*NATIVE, "guid", srs.SR_MARK])
        ident = srs.identity_from(sr, tree[sr][0])
    except ZfsError as exc:
        raise SrNotAttached(f"{sr}: {exc.detail or exc}") from None
    return Sr(backend, sr, ident.guid, props=tree[sr][0], user=tree[sr][1]), tree
