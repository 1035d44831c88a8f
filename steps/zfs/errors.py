"""ZFS errors typed by meaning, and the one place where errno and stderr are translated to them.

Every ZFS backend (pyzfs, the zfs CLI, the in-memory model) raises only these classes, so a step
asks "is this transient?" or "does it already exist?" and never parses a message itself.
"""
from __future__ import annotations

import errno as _errno


class ZfsError(Exception):
    """A ZFS call failed. `transient` says whether the same call may succeed if retried."""

    transient = False

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        self.detail = detail
        super().__init__(f"{name}: {detail}" if detail else name)


class NotFound(ZfsError):
    """The dataset, snapshot, parent or hold does not exist."""


class AlreadyExists(ZfsError):
    """The target name (dataset, snapshot or hold) is taken."""


class Busy(ZfsError):
    """The dataset is in use (open zvol, txg in flight). Worth a bounded retry."""

    transient = True


class HasDependents(ZfsError):
    """Destroy refused: a dataset has snapshots or children, or a snapshot has clones."""


class SnapshotHeld(ZfsError):
    """Destroy refused: the snapshot carries user holds."""


class NotAClone(ZfsError):
    """Promote of a dataset that has no origin."""


class InvalidName(ZfsError):
    """A name ZFS would refuse or misparse, or one outside the SR: refused before any call."""


class InvalidValue(ZfsError):
    """A property value ZFS refuses (volsize not a multiple of volblocksize, bad number)."""


class NoSpace(ZfsError):
    """The pool is out of space or the quota is exceeded."""


class DeviceInUse(ZfsError):
    """A device given for a new pool holds a filesystem or another pool (active, exported or
    last used by another host). zfsaga never forces: an admin frees the device first."""


class ZfsUnavailable(ZfsError):
    """No /dev/zfs, or the pool is suspended or read-only."""


class ZfsFailure(ZfsError):
    """Any other failure: permanent, with the original message kept for the operator."""


class NotAncestor(ZfsError):
    """An incremental send from a snapshot or bookmark that is not an earlier point of the
    target's history (a later snapshot, another volume's, another lineage's after a revert)."""


class StreamError(ZfsError):
    """A send stream zfsaga cannot read to the end: what changed between two points is then
    unknown, never "nothing" (a backup tool falls back to a full copy on an error, and would
    silently miss data on a wrong answer). `name` is the stream's source, `detail` the reason
    and the byte offset where reading stopped."""


class StreamCorrupt(StreamError):
    """The stream breaks its own format: bad magic, a checksum that does not match, a record
    that contradicts the stream's header, bytes after its END."""


class StreamTruncated(StreamCorrupt):
    """The stream ended inside a record or before its END record."""


class StreamUnsupported(StreamError):
    """A well-formed stream using a record type, flag, feature or byte order this reader does
    not know the meaning of for a volume's blocks."""


class OutsideSaga(Exception):
    """A change to ZFS asked for outside any saga: refused by the layer's guard (guard.py)
    before it reaches ZFS. A defect of zfsaga, never a state of the pool: not a ZfsError, so
    no caller that handles ZFS's refusals (a probe's retry, a verb's Sr_not_attached) can take
    it for one."""

    def __init__(self, op: str, name: str) -> None:
        self.op, self.name = op, name
        super().__init__(f"{op} {name}: a ZFS change outside any saga (every change is a "
                         f"saga's step: steps/zfs/guard.py)")


_ERRNO_CLASSES: dict[int, type[ZfsError]] = {
    _errno.ENOENT: NotFound,
    _errno.EEXIST: AlreadyExists,
    _errno.EBUSY: Busy,
    _errno.ENOSPC: NoSpace,
    _errno.EDQUOT: NoSpace,
    _errno.EROFS: ZfsUnavailable,
    _errno.EAGAIN: Busy,
    _errno.ENAMETOOLONG: InvalidName,
}


def from_errno(code: int, name: str, detail: str) -> ZfsError:
    """Translate a bare errno (what a channel program's zfs.sync and zfs.check calls return)."""
    if code in (_errno.EINVAL, _errno.E2BIG):
        return InvalidValue(name, detail)
    return _ERRNO_CLASSES.get(code, ZfsFailure)(name, detail)


def from_lzc(exc: BaseException, name: str, *, deferred: bool = False) -> ZfsError:
    """Translate a libzfs_core exception (or a MultipleOperationsFailure) to a typed error.
    `deferred`: the call was a deferred destroy of snapshots (see SnapshotIsHeld below)."""
    from libzfs_core import exceptions as lzc  # only the real backend has pyzfs

    inner = exc
    if isinstance(exc, lzc.MultipleOperationsFailure) and exc.errors:
        inner = exc.errors[0]
    detail = f"{type(inner).__name__}: {inner}"
    if isinstance(inner, lzc.SnapshotIsCloned):
        return HasDependents(name, detail)
    if isinstance(inner, lzc.SnapshotIsHeld):
        # pyzfs names every EBUSY of a snapshot destroy "held". A deferred destroy is never
        # refused for holds (ZFS marks the snapshot instead), so there the EBUSY is a long
        # hold on the snapshot: its zvol device open (udev probing it under snapdev=visible),
        # which passes. Observed on real ZFS under load, a clone's base snapshot.
        return (Busy if deferred else SnapshotHeld)(name, detail)
    if isinstance(inner, lzc.SnapshotMismatch):  # lzc_send: EXDEV within one pool
        return NotAncestor(name, detail)
    if isinstance(inner, lzc.NotClone):
        return NotAClone(name, detail)
    if isinstance(inner, lzc.HoldNotFound):
        return NotFound(name, detail)
    if isinstance(inner, (lzc.NameInvalid, lzc.NameTooLong, lzc.PoolsDiffer, lzc.WrongParent,
                          lzc.DuplicateSnapshots)):
        return InvalidName(name, detail)
    if isinstance(inner, (lzc.PropertyInvalid, lzc.PropertyNotSupported, lzc.DatasetTypeInvalid)):
        return InvalidValue(name, detail)
    if isinstance(inner, (lzc.ZFSInitializationFailed, lzc.SuspendedPool, lzc.ReadOnlyPool)):
        return ZfsUnavailable(name, detail)
    cls = _ERRNO_CLASSES.get(getattr(inner, "errno", None) or -1)
    if cls is None and isinstance(inner, OSError) and inner.errno in _ERRNO_CLASSES:
        cls = _ERRNO_CLASSES[inner.errno]
    return (cls or ZfsFailure)(name, detail)


# The zfs CLI has exit status 1 for nearly everything; its stderr is the only signal. These are
# the messages of OpenZFS's libzfs (zfs_error_aux / zfs_standard_error), most specific first.
_CLI_MESSAGES: tuple[tuple[str, type[ZfsError]], ...] = (
    ("dataset does not exist", NotFound),
    # zpool create / import / export (their own words, most specific first)
    ("is part of active pool", DeviceInUse),
    ("is part of exported pool", DeviceInUse),
    ("is part of potentially active pool", DeviceInUse),
    ("contains a filesystem", DeviceInUse),
    ("is in use and contains", DeviceInUse),
    ("in use from another system", DeviceInUse),
    ("in use from other system", DeviceInUse),
    ("pool already exists", AlreadyExists),
    ("a pool with that name already exists", AlreadyExists),
    ("cannot resolve path", NotFound),
    ("invalid vdev specification", InvalidValue),
    ("no such pool", NotFound),
    ("could not find any snapshots", NotFound),
    ("no such tag", NotFound),
    ("dataset already exists", AlreadyExists),
    ("snapshot has dependent clones", HasDependents),
    ("has children", HasDependents),
    ("tag already exists", AlreadyExists),
    ("filesystem already mounted", AlreadyExists),
    ("operation not applicable to datasets of this type", InvalidValue),
    ("is busy", Busy),
    ("must be a multiple of volume block size", InvalidValue),
    ("volume size must be a multiple", InvalidValue),
    ("bad numeric value", InvalidValue),
    ("does not apply to datasets of this type", InvalidValue),
    ("invalid property", InvalidValue),
    ("bad property", InvalidValue),
    ("must be one of", InvalidValue),
    ("must be a power of 2", InvalidValue),
    ("invalid character", InvalidName),
    ("name is too long", InvalidName),
    ("out of space", NoSpace),
    ("greater than available space", NoSpace),  # zfs set refreservation
    ("read-only", ZfsUnavailable),
    ("/dev/zfs", ZfsUnavailable),
    ("pool I/O is currently suspended", ZfsUnavailable),
)


def from_cli(name: str, stderr: str) -> ZfsError:
    """Translate a failed zfs CLI call, by its stderr, to a typed error."""
    text = stderr.strip()
    for needle, cls in _CLI_MESSAGES:
        if needle in text:
            return cls(name, text)
    return ZfsFailure(name, text)
