"""The keys sagas lock and journal under, and the lock each key takes. An SR's key is
`sr-<guid>` (steps/srs.py sr_key); a saga of Scope.INSIDE locks `<SR key>/<what>` (a new
volume, a cleanup set aside), the SR's lock held shared; a pool saga locks `pool-<name>` on the
host. A key read back from the journal carries no saga class with it (a set-aside cleanup is
keyed under its SR whatever its kind): its scope is read from its form here, once, and
state/locks.py takes it typed."""
from __future__ import annotations

import os

from zfsaga.state.locks import NestedLock, ResourceLock, Scope, lock_for
from zfsaga.steps.srs import SR_KEY_PREFIX


def pool_resource(pool: str) -> str:
    """The lock and journal key of every pool saga: a pool is one thing on a host by name."""
    return f"pool-{pool}"


def scope_of(resource: str) -> Scope:
    """INSIDE for a key under an SR's key; WHOLE for an SR's, a pool's, or a key of an older
    version that named the SR as typed (slashes included)."""
    owner, sep, _ = resource.partition("/")
    return Scope.INSIDE if sep and owner.startswith(SR_KEY_PREFIX) else Scope.WHOLE


def lock_of(directory: str | os.PathLike[str], resource: str) -> ResourceLock | NestedLock:
    """The lock a saga recorded on `resource` holds."""
    return lock_for(directory, resource, scope_of(resource))
