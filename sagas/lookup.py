"""A saga's target, given as a name or as a finder called under the saga's lock. A name the
plugin read before taking the lock can be stale by then: a concurrent revert moves a VDI's
newer snapshots onto a retired head. So the plugin passes a finder that checks the name it
found and, if it is gone, finds the key again, under the lock the saga resolves in."""
from __future__ import annotations

from typing import Callable, Union

Target = Union[str, Callable[[], str]]


def current(target: Target) -> str:
    return target() if callable(target) else target
