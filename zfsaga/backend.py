"""Which ZFS a process talks to: real ZFS by default; `ZFSAGA_ZFS=model:<file>` selects the
file-shared model (tests running many processes against one simulated pool)."""
from __future__ import annotations

import os

from zfsaga.steps.zfs.interface import Zfs, ZfsHooks


def open_zfs(hooks: ZfsHooks | None = None, *, in_process: bool = False,
             listings_in_process: bool = False) -> Zfs:
    """The ZFS layer, its guard armed: a change outside a saga is refused in every process
    that opens ZFS here, on real ZFS and on the tests' shared model alike (steps/zfs/guard.py).
    `in_process`: the caller will mutate (so loads pyzfs anyway), and the real backend then
    reads through pyzfs too (steps/zfs/channel.py); `listings_in_process`: so do its reads of a
    whole tree (and every other read); the model ignores both."""
    zfs = _backend(hooks, in_process, listings_in_process)
    zfs.guard.armed = True
    return zfs


def _backend(hooks: ZfsHooks | None, in_process: bool, listings_in_process: bool) -> Zfs:
    spec = os.environ.get("ZFSAGA_ZFS", "real")
    if spec.startswith("model:"):
        from zfsaga.steps.zfs.shared_model import SharedModelZfs

        pools = tuple(os.environ.get("ZFSAGA_MODEL_POOLS", "tank").split(","))
        return SharedModelZfs(spec[len("model:"):], pools=pools, hooks=hooks)
    from zfsaga.steps.zfs.real import RealZfs

    return RealZfs(hooks, in_process=in_process, listings_in_process=listings_in_process)
