"""Per-resource mutual exclusion between processes: flock on a lock file that is never deleted
(unlinking would let two processes hold "the" lock on two inodes). The kernel drops a flock when
its holder dies, kill -9 included, so "saga active but its lock is free" means orphaned.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from enum import Enum
from pathlib import Path


class Scope(Enum):
    """What a saga's lock covers. WHOLE: its resource, exclusive (an SR, a pool). INSIDE: one
    thing inside an owner (`<owner>/<what>`, e.g. a new volume of an SR): the owner's lock
    shared and the thing's own exclusive, so sagas inside one owner run side by side while a
    saga of the whole owner waits for them, and they for it."""

    WHOLE = "whole"
    INSIDE = "inside"


class LockBusy(RuntimeError):
    """The resource stayed locked by another live process for the whole wait."""

    def __init__(self, resource: str, waited: float) -> None:
        super().__init__(f"{resource} is busy: another zfsaga call holds it "
                         f"(waited {waited:.1f}s)")
        self.resource = resource


def lock_file_name(resource: str) -> str:
    """A stable, safe file name for a resource key (readable prefix, hash for uniqueness)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", resource)[:60]
    return f"{readable}.{hashlib.sha256(resource.encode()).hexdigest()[:12]}.lock"


class ResourceLock:
    """An exclusive flock on one resource (shared, for the SR under a narrow saga); a context
    manager. Held for a whole saga."""

    def __init__(self, directory: str | os.PathLike[str], resource: str,
                 shared: bool = False) -> None:
        self.resource = resource
        self.path = Path(directory, "locks", lock_file_name(resource))
        self.mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        self._fd: int | None = None
        #: How long the last acquire waited for other holders (seconds).
        self.waited = 0.0

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, self.mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def acquire(self, wait: float) -> "ResourceLock":
        """Wait up to `wait` seconds (polling with backoff), then raise LockBusy."""
        return _acquire(self, wait)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last fd drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def line_path(self) -> Path:
        return self.path

    def is_free(self) -> bool:
        """Whether nobody holds the lock right now (a probe: takes and drops it at once)."""
        if self.held:
            return False
        # Read-only and never creating the file: `zfsaga list` works for a user who cannot
        # write the state directory (a flock needs no write access).
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True  # never locked by anyone
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    def __enter__(self) -> "ResourceLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


#: No wait lasts this long (a call answers at its deadline): an older waiter's file is one
#: whose pid was reused by another process after its waiter was killed.
STALE_WAITER_NS = 3600 * 10**9


class _Line:
    """The waiting line of one resource, so waiters are served in the order they came (a
    flock has no order: a waiter polling it can lose to newer ones for ever). Each waiter is a
    file `locks/<lock>.line/<arrival ns>-<pid>`; a waiter tries the lock only when no live
    waiter came before it. A waiter killed while waiting leaves its file: skipped (its pid is
    gone) and removed by the next waiter that sees it. The last waiter to leave removes the
    directory (rmdir: only if empty, so never from under a waiter); a waiter that finds it
    gone between making it and joining makes it again."""

    def __init__(self, lock_path: Path) -> None:
        self.dir = lock_path.with_suffix(".line")
        self.me: Path | None = None

    def join(self) -> None:
        while True:
            self.dir.mkdir(parents=True, exist_ok=True)
            me = self.dir / f"{time.time_ns():020d}-{os.getpid()}"
            try:
                os.close(os.open(me, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            except FileNotFoundError:
                continue  # the last waiter before us removed the line just now
            self.me = me
            return

    def ahead(self, before: str | None = None) -> bool:
        """Whether a live waiter came before us (or before the arrival `before`)."""
        mine = before or (self.me.name if self.me else None)
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return False
        stale = time.time_ns() - STALE_WAITER_NS
        for name in names:
            if mine is not None and name >= mine:
                return False
            arrived, _, pid = name.partition("-")
            if _alive(int(pid or 0)) and arrived.isdigit() and int(arrived) > stale:
                return True
            try:
                os.unlink(self.dir / name)
            except FileNotFoundError:
                pass
        return False

    def leave(self) -> None:
        if self.me is not None:
            try:
                os.unlink(self.me)
            except FileNotFoundError:
                pass
            self.me = None
            try:
                os.rmdir(self.dir)  # the last one out: fails harmlessly while others wait
            except OSError:
                pass


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _acquire(lock, wait: float):
    """Wait up to `wait` seconds, served in arrival order (see _Line), then LockBusy. A nested
    lock's waiter also lets an SR-wide waiter that came first go first: otherwise a stream of
    creates, each holding the SR's lock shared, could keep an SR-wide saga waiting for ever."""
    start = time.monotonic()
    line = _Line(lock.line_path)
    outer = _Line(lock.outer.path) if isinstance(lock, NestedLock) else None
    line.join()
    delay = 0.01
    try:
        while True:
            if not line.ahead() and not (outer and outer.ahead(line.me.name)) \
                    and lock.try_acquire():
                lock.waited = time.monotonic() - start
                return lock
            waited = time.monotonic() - start
            if waited >= wait:
                raise LockBusy(lock.resource, waited)
            time.sleep(min(delay, max(0.0, wait - waited)))
            delay = min(delay * 2, 0.1)
    finally:
        line.leave()


class NestedLock:
    """The lock of Scope.INSIDE: a resource `<owner>/<what>` inside its owner (one new volume
    of an SR): the owner's lock shared, so any number of them run side by side while a saga
    of the whole owner (which takes its lock exclusive) waits for them and they for it; then
    the resource's own lock."""

    def __init__(self, directory: str | os.PathLike[str], resource: str) -> None:
        self.resource = resource
        self.outer = ResourceLock(directory, resource.partition("/")[0], shared=True)
        self.inner = ResourceLock(directory, resource)
        self.waited = 0.0

    def try_acquire(self) -> bool:
        if not self.outer.try_acquire():
            return False
        if not self.inner.try_acquire():
            self.outer.release()
            return False
        return True

    def acquire(self, wait: float) -> "NestedLock":
        return _acquire(self, wait)

    def release(self) -> None:
        self.inner.release()
        self.outer.release()

    @property
    def held(self) -> bool:
        return self.inner.held

    @property
    def line_path(self) -> Path:
        return self.inner.path

    def is_free(self) -> bool:
        return self.inner.is_free()

    def __enter__(self) -> "NestedLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_for(directory: str | os.PathLike[str], resource: str,
             scope: Scope) -> ResourceLock | NestedLock:
    """The lock a saga on `resource` of `scope` holds (sagas/resources.py says which scope a
    recorded key has): nested inside its owner, or exclusive on the whole resource."""
    if scope is Scope.INSIDE:
        if "/" not in resource:
            raise ValueError(f"{resource!r} names no owner to be inside of")
        return NestedLock(directory, resource)
    if scope is Scope.WHOLE:
        return ResourceLock(directory, resource)
    raise TypeError(f"a lock's scope is a Scope, not {scope!r}")
