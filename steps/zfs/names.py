"""Dataset and snapshot names: validated before any ZFS call, so nothing misparses or escapes.

ZFS accepts some names that are dangerous in an argv (a component starting with '-') and the
plugin must never act outside its SR, so the rules here are stricter than ZFS's own.
"""
from __future__ import annotations

import re

from zfsaga.steps.zfs.errors import InvalidName

# ZFS allows [A-Za-z0-9_.:-] (and space in newer releases); we drop space, and forbid a
# leading '-' or '.', so a component can never read as an option or as '.'/'..'.
_COMPONENT = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9_.:-]{0,199}")
MAX_NAME = 255  # ZFS_MAX_DATASET_NAME_LEN - 1


def check_component(part: str, what: str = "name component") -> str:
    """Return `part` if it is a safe single name component, else raise InvalidName."""
    if not isinstance(part, str) or not _COMPONENT.fullmatch(part):
        raise InvalidName(repr(part), f"not a valid {what}")
    return part


def check_dataset(name: str) -> str:
    """Return `name` if it is a safe dataset path (pool/a/b), else raise InvalidName."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise InvalidName(repr(name), "empty or too long dataset name")
    for part in name.split("/"):
        check_component(part, "dataset name component")
    return name


def check_snapshot(name: str) -> str:
    """Return `name` if it is a safe `dataset@snap`, else raise InvalidName."""
    if not isinstance(name, str) or name.count("@") != 1 or len(name) > MAX_NAME:
        raise InvalidName(repr(name), "not a snapshot name (dataset@snap)")
    dataset, snap = name.split("@")
    check_dataset(dataset)
    check_component(snap, "snapshot name")
    return name


def check_bookmark(name: str) -> str:
    """Return `name` if it is a safe `dataset#bookmark`, else raise InvalidName."""
    if not isinstance(name, str) or name.count("#") != 1 or "@" in name \
            or len(name) > MAX_NAME:
        raise InvalidName(repr(name), "not a bookmark name (dataset#bookmark)")
    dataset, mark = name.split("#")
    check_dataset(dataset)
    check_component(mark, "bookmark name")
    return name


def check_any(name: str) -> str:
    """Validate a dataset or a snapshot name."""
    return check_snapshot(name) if isinstance(name, str) and "@" in name else check_dataset(name)


def dataset_of(name: str) -> str:
    """The dataset part of a dataset or snapshot name."""
    return name.split("@", 1)[0]


def pool_of(name: str) -> str:
    """The pool a dataset, snapshot or pool name lives in."""
    return name.split("/", 1)[0].split("@", 1)[0]


def parent_of(dataset: str) -> str | None:
    """The parent dataset, or None for a pool's root."""
    return dataset.rsplit("/", 1)[0] if "/" in dataset else None


def is_within(root: str, name: str) -> bool:
    """True if `name` (dataset or snapshot) is `root` itself or lies below it."""
    ds = dataset_of(name)
    return ds == root or ds.startswith(root + "/")


def check_within(root: str, name: str) -> str:
    """Validate `name` and require it to be inside `root` (the SR); raise InvalidName if not.
    A snapshot of the root itself counts as inside (the SR's own snapshots)."""
    check_any(name)
    if not is_within(root, name):
        raise InvalidName(name, f"outside the SR {root}")
    return name


def check_inside(root: str, dataset: str) -> str:
    """Validate a dataset name and require it to lie strictly below `root`: a VDI is never the
    SR itself (a saga on "the VDI" would rename or retire the whole SR)."""
    check_dataset(dataset)
    if not dataset.startswith(root + "/"):
        what = "the SR itself" if dataset == root else "outside the SR"
        raise InvalidName(dataset, f"{what} {root}: a VDI lies strictly inside its SR")
    return dataset


#: Words `zpool create` reads as vdev types or reserves: never a pool name.
_RESERVED_POOL = re.compile(r"(mirror|raidz[0-9]*|draid[0-9]*|spare|log|cache|special|dedup"
                            r"|c[0-9].*)")
_POOL = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,199}")
_DEVICE = re.compile(r"(/[A-Za-z0-9_.:+@,=-]+)+")


def check_pool(pool: str) -> str:
    """A name for a new pool: a letter first (ZFS's rule), no vdev keyword."""
    if not isinstance(pool, str) or not _POOL.fullmatch(pool) or _RESERVED_POOL.fullmatch(pool):
        raise InvalidName(repr(pool), "not a pool name (a letter, then letters, digits, "
                                      "_ . : -; not a vdev keyword such as mirror)")
    return pool


def check_device(path: str) -> str:
    """A device (or, for tests, a file) for a new pool: an absolute path with no `.` or `..`
    component, nothing an argv could misread."""
    if (not isinstance(path, str) or len(path) > 4096 or not _DEVICE.fullmatch(path)
            or any(part in (".", "..") for part in path.split("/"))):
        raise InvalidName(repr(path), "not an absolute device path")
    return path
