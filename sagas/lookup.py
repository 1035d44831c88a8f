"""A saga's target, given as a name or as a finder called under the saga's lock. A name the
plugin read before taking the lock can be stale by then: a destroy queued first may have
retired or destroyed the VDI, a concurrent revert moves a VDI's newer snapshots onto a retired
head. So the plugin passes a finder that finds the VDI by its key again, under the lock the
saga resolves in, and raises (Volume_does_not_exist) when the key is no VDI any more: the saga
records nothing, as in a serial order.

A saga's resolve also refuses, whatever gave it the name, what a destroy left behind: a
dataset kept retired for its snapshots or a snapshot marked for deferred destroy is no VDI to
act on (an operator's `zfsaga revert` of a retired head would bring a destroyed VDI back)."""
from __future__ import annotations

from typing import Callable, Union

from zfsaga.steps.meta import RETIRED
from zfsaga.steps.zfs.errors import NotFound
from zfsaga.steps.zfs.interface import Prop

Target = Union[str, Callable[[], str]]
#: The properties `refuse_destroyed` needs, to read in the resolve's own `get_props`.
DESTROYED = [RETIRED, "defer_destroy"]


def current(target: Target) -> str:
    return target() if callable(target) else target


def refuse_retired(name: str, user: dict[str, str]) -> None:
    """NotFound when `name`, whose local user properties are `user`, is a destroyed volume
    kept retired."""
    if RETIRED in user:
        raise NotFound(name, "destroyed: kept retired (hidden) while its snapshots or clones "
                             "need it, not a VDI")


def refuse_destroyed(name: str, props: dict[str, Prop]) -> None:
    """NotFound when `name` is what a destroy left behind (`props` read with DESTROYED)."""
    if props[RETIRED].local is not None:
        refuse_retired(name, {RETIRED: props[RETIRED].local})
    if props["defer_destroy"].value == "on":
        raise NotFound(name, "destroyed: marked for ZFS to destroy with its last clone")
