"""Bookmark a snapshot (what Volume.data_destroy keeps of it: a point in its volume's history,
for changed block tracking), and destroy a bookmark (Volume.destroy of a metadata-only VDI).
A bookmark carries its snapshot's guid: that guid at the bookmark's name is the proof that it
is the one this saga made or means."""
from __future__ import annotations

from typing import Any

from zfsaga.steps.base import Probe, Step, StepContext, exists
from zfsaga.steps.zfs import names


def guid_at(ctx: StepContext, bookmark: str) -> str | None:
    """The guid of the bookmark at this name; None when there is none (or no dataset)."""
    dataset = bookmark.split("#")[0]
    if not exists(ctx.zfs, dataset):
        return None
    got = ctx.zfs.bookmarks(dataset).get(bookmark)
    return got["guid"] if got else None


class BookmarkSnapshot(Step):
    """Args: snapshot (name), snapshot_guid, bookmark (`<its dataset>#<name>`). Compensation:
    destroy the bookmark while it is the snapshot's (compensations/bookmarks.py)."""

    FACTS = ("name", "guid")

    def probe(self, ctx: StepContext) -> Probe:
        guid = guid_at(ctx, self.arg(ctx, "bookmark"))
        if guid is None:
            return "absent"
        return "done" if guid == self.arg(ctx, "snapshot_guid") else "foreign"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.bookmark(self.arg(ctx, "snapshot"), self.arg(ctx, "bookmark"))

    def facts(self, ctx: StepContext) -> dict[str, Any]:
        return {"name": self.arg(ctx, "bookmark"), "guid": self.arg(ctx, "snapshot_guid")}

    def effect(self, ctx: StepContext) -> str | None:
        if self.probe(ctx) == "done":
            return f"bookmark {self.arg(ctx, 'bookmark')} made"
        return None


class DestroyBookmark(Step):
    """Args: bookmark, guid. The pivot of a metadata-only VDI's destroy: there is no undo of a
    destroy. Done when no bookmark with that guid is at the name."""

    kind = "pivot"
    guards = True  # destroys: the guid at the name must be the one the saga resolved

    def probe(self, ctx: StepContext) -> Probe:
        guid = guid_at(ctx, self.arg(ctx, "bookmark"))
        if guid is None:
            return "done"
        return "absent" if guid == self.arg(ctx, "guid") else "foreign"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.destroy_bookmarks([names.check_bookmark(self.arg(ctx, "bookmark"))])
