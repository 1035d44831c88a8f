"""Rename a dataset known by its guid: done when the guid sits at the new name."""
from __future__ import annotations

from zfsaga.steps.base import Probe, Step, StepContext, guid_of


class RenameDataset(Step):
    """Args: source, target, guid. Compensation: rename it back (if the old name is free)."""

    def probe(self, ctx: StepContext) -> Probe:
        guid = self.arg(ctx, "guid")
        if guid_of(ctx.zfs, self.arg(ctx, "target")) == guid:
            return "done"
        if guid_of(ctx.zfs, self.arg(ctx, "source")) == guid:
            return "absent"
        return "foreign"  # the dataset is neither where it was nor where it should go

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.rename(self.arg(ctx, "source"), self.arg(ctx, "target"))

    def effect(self, ctx: StepContext) -> str | None:
        if guid_of(ctx.zfs, self.arg(ctx, "target")) == self.arg(ctx, "guid"):
            return f"{self.arg(ctx, 'source')} renamed to {self.arg(ctx, 'target')}"
        return None
