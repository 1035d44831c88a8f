"""Garbage-collect retired datasets nothing needs any more: a volume destroyed while its
snapshots or clones lived was kept, retired; once its last snapshot is gone it is destroyed.
The candidates are the destroyed object's origin chain, resolved when the saga began."""
from __future__ import annotations

from zfsaga.steps.base import RETIRED, Probe, Step, StepContext, props_at


def collectable(ctx: StepContext, name: str, guid: str) -> bool:
    """Retired, still this guid, and with no snapshot, child or bookmark left (a bookmark is
    a metadata-only VDI's history: steps/bookmark.py)."""
    got = props_at(ctx.zfs, name, guid, [RETIRED])
    if got is None or got[RETIRED].local is None:
        return False
    return len(ctx.zfs.list_tree(name, ["guid"])) == 1 and not ctx.zfs.bookmarks(name)


class CollectRetired(Step):
    """Args: candidates, a list of [name, guid], nearest first. Forward-only cleanup."""

    kind = "retriable"

    def probe(self, ctx: StepContext) -> Probe:
        pending = [c for c in self.arg(ctx, "candidates") if collectable(ctx, *c)]
        return "absent" if pending else "done"

    def act(self, ctx: StepContext) -> None:
        # Nearest first: destroying one may free its own origin's dataset, next in the list.
        for name, guid in self.arg(ctx, "candidates"):
            if collectable(ctx, name, guid):
                ctx.zfs.destroy(name)
