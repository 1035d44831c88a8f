"""The temporary snapshot a saga takes for its caller's read (sagas/volume_list_changed_blocks.py)
and what it may have kept alive, released wherever they are by then.

Its release normally follows the read at once, under the same lock. But a release that fails
twice is set aside (sagas/recovery.py) and the SR goes on: a revert meanwhile leaves the
snapshot, newer than the revert's point, on the retired old head under another name; a
destroy meanwhile keeps the volume, retired, for that snapshot alone. So both are found by
their guids, never by the names they had when the saga began."""
from __future__ import annotations

from typing import Iterator

from zfsaga.steps.base import Probe, Step, StepContext, locate
from zfsaga.steps.collect import collectable


class ReleaseTemporary(Step):
    """Args: snapshot (its name when taken, a hint), guid. Destroyed where it is now
    (deferred: a clone an operator made of it keeps it until the clone goes). Forward-only
    cleanup."""

    kind = "retriable"
    guards = True  # always probe: it may have moved since the saga began

    def _where(self, ctx: StepContext) -> str | None:
        return locate(ctx.zfs, ctx.params["sr"], self.arg(ctx, "guid"),
                      self.arg(ctx, "snapshot"))

    def probe(self, ctx: StepContext) -> Probe:
        where = self._where(ctx)
        if where is None:
            return "done"
        deferred = ctx.zfs.get_props(where, ["defer_destroy"])["defer_destroy"].value == "on"
        return "done" if deferred else "absent"

    def act(self, ctx: StepContext) -> None:
        where = self._where(ctx)
        if where is not None:
            ctx.zfs.destroy_snapshots([where], defer=True)


class CollectKept(Step):
    """Args: candidates, [name, guid] of the volume the snapshot was taken of and its origin
    chain, nearest first. Each one retired (destroyed meanwhile) and now empty is destroyed,
    found by its guid (a revert renames the head it retires). Forward-only cleanup."""

    kind = "retriable"

    def _pending(self, ctx: StepContext) -> Iterator[str]:
        """Each candidate retired and empty, where it is now, judged lazily: destroying one
        may free its own origin's dataset, next in the list (nearest first)."""
        for name, guid in self.arg(ctx, "candidates"):
            where = locate(ctx.zfs, ctx.params["sr"], guid, name)
            if where is not None and collectable(ctx, where, guid):
                yield where

    def probe(self, ctx: StepContext) -> Probe:
        return "absent" if next(self._pending(ctx), None) is not None else "done"

    def act(self, ctx: StepContext) -> None:
        for where in self._pending(ctx):
            ctx.zfs.destroy(where)
