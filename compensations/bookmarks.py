"""Undo of BookmarkSnapshot: destroy the bookmark, only while the one at its name carries the
snapshot's guid (anything else there is not this saga's)."""
from __future__ import annotations

from zfsaga.compensations.registry import undoes
from zfsaga.steps.base import Step, StepContext
from zfsaga.steps.bookmark import BookmarkSnapshot, guid_at


@undoes(BookmarkSnapshot)
def destroy_bookmark(step: Step, ctx: StepContext) -> None:
    bookmark = step.arg(ctx, "bookmark")
    if guid_at(ctx, bookmark) != step.arg(ctx, "snapshot_guid"):
        return
    ctx.boundary(f"comp:{step.name}:inside")
    ctx.zfs.destroy_bookmarks([bookmark])
