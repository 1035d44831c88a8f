"""Where an SR's journal and lock files live: with the SR, so they travel with the pool and
survive a reinstall of the host, yet outside every dataset a saga renames, rolls back or
destroys. That is a filesystem of its own, `<pool>/zfsaga-state`, tagged as zfsaga's, with one
directory per SR named by the SR dataset's guid (which survives renames of the SR).

ZFSAGA_STATE_DIR overrides the base (tests, hosts whose pool is not mounted).

It lives in zfsaga/, where the layers are put together (beside backend.py), not in state/:
finding the journal's home creates and mounts a filesystem, a ZFS call, and state/ (the
journal and the locks) makes none.

Making, tagging and mounting that filesystem are the one ZFS change zfsaga makes outside a
saga: it is the journal's home, needed before any journal exists, so no saga can journal it.
The layer's guard (steps/zfs/guard.py) lets these three calls by for that one name only. It
holds no VDI and no admin's data, and each call is idempotent or checked first (a half-born
one is tagged only when provably empty). Taking a dataset on as an SR is not done here: it is
SR.create's saga (its `mark` step); a verb finds the journal of an SR that is one already."""
from __future__ import annotations

import os
from pathlib import Path

from zfsaga.steps import srs
from zfsaga.steps.zfs.interface import Zfs

META_DATASET = srs.STATE_DATASET
#: The host's own journal, for the sagas that make, import, export or destroy a pool
#: (sagas/pool_*.py): a journal cannot live on the pool such a saga acts on.
HOST_STATE = "/var/lib/zfsaga"
ROLE = "org.zfsaga:role"
meta_dataset = srs.state_dataset


def state_base(zfs: Zfs, sr: str, *, create: bool = False) -> Path:
    """The base directory holding the pool's per-SR state directories."""
    override = os.environ.get("ZFSAGA_STATE_DIR")
    if override:
        return Path(override)
    meta = meta_dataset(sr)
    with zfs.guard.exempt(meta):
        return _state_filesystem(zfs, meta, create)


def _state_filesystem(zfs: Zfs, meta: str, create: bool) -> Path:
    """The mountpoint of the pool's state filesystem, made, tagged and mounted as needed."""
    if not zfs.exists(meta):
        if not create:
            raise FileNotFoundError(f"{meta} does not exist: no zfsaga state on this pool")
        zfs.create_filesystem(meta, {ROLE: "state"})
    props = zfs.get_props(meta, ["mountpoint", "mounted", ROLE, "type"])
    if props[ROLE].local is None and create and half_born_state(zfs, meta, props):
        zfs.set_props(meta, {ROLE: "state"})
        props = zfs.get_props(meta, ["mountpoint", "mounted", ROLE, "type"])
    if props[ROLE].local != "state":
        raise PermissionError(f"{meta} exists but is not zfsaga's state dataset (it has no "
                              f"{ROLE}=state and is not empty): move it away or tag it")
    mountpoint = props["mountpoint"].value
    if not mountpoint or not mountpoint.startswith("/"):
        raise FileNotFoundError(f"{meta} has no mountpoint ({mountpoint}): set one with "
                                f"zfs set mountpoint=/PATH {meta}")
    if props["mounted"].value != "yes":
        # Created through libzfs_core (which never mounts), or a pool imported without
        # mounting: a journal opened now would land in the directory under the mountpoint, on
        # the parent's filesystem, and vanish beneath the mount later. Mounting changes no data.
        zfs.mount(meta)
    return Path(mountpoint)


def half_born_state(zfs: Zfs, meta: str, props: dict) -> bool:
    """Whether an untagged `<pool>/zfsaga-state` is zfsaga's own, born without its tag: ZFS
    creates a dataset and sets the properties it was created with in a transaction of their
    own, and a power cut between the two leaves it bare (steps/base.py, `half_born`). Outside
    any saga there is no journal to say so, so the proof is that it holds nothing: a
    filesystem with no children, no snapshots and an empty root directory. Tagging it then
    risks no one's data (the name is zfsaga's); anything else there stays refused."""
    if props["type"].value != "filesystem" or list(zfs.list_tree(meta, ["type"])) != [meta]:
        return False
    mountpoint = props["mountpoint"].value
    if not mountpoint or not mountpoint.startswith("/"):
        return False
    if props["mounted"].value != "yes":
        zfs.mount(meta)
    try:
        return _entries(mountpoint) == []
    except OSError:
        return False


def _entries(directory: str) -> list[str]:
    return os.listdir(directory)


def sr_state_dir_by_guid(zfs: Zfs, sr: str, guid: str) -> Path:
    """The state directory of a dataset about to become an SR (SR.create marks it inside its
    saga, so nothing here may mark it first)."""
    path = state_base(zfs, sr, create=True) / srs.sr_key(guid)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sr_state_dir(zfs: Zfs, sr: str, *, create: bool = False) -> Path:
    """The state directory of one SR (journal.db, locks/), named by the SR's guid; the
    dataset must be a zfsaga SR already (SR.create's saga marks it: nothing here does). With
    `create`, the state filesystem and the directory are made when missing."""
    ident = srs.identify(zfs, sr) if create else None  # refused before anything is made
    base = state_base(zfs, sr, create=create)
    ident = ident or srs.identify(zfs, sr)
    path = base / ident.key
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def host_state_dir() -> Path:
    """The host's journal and lock directory (ZFSAGA_HOST_STATE_DIR overrides it)."""
    path = Path(os.environ.get("ZFSAGA_HOST_STATE_DIR") or HOST_STATE)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
