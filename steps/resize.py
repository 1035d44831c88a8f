"""Grow a volume known by its guid: done when its volsize is at least the new size. A thick
volume's reservation grows with it, in the same call (Zfs.set_volsize).

It is a pivot, with no undo: a grown volume is never shrunk back by zfsaga, since blocks past
the old end may already hold a guest's data. Before it starts, an abort has nothing to undo;
once it has, the saga only goes forward."""
from __future__ import annotations

from zfsaga.steps.base import Probe, Step, StepContext, props_at


def volsize(step: Step, ctx: StepContext) -> int | None:
    """The volume's size, or None when its guid is not at its name."""
    got = props_at(ctx.zfs, step.arg(ctx, "dataset"), step.arg(ctx, "guid"), ["volsize"])
    return None if got is None else int(got["volsize"].value)


class GrowVolume(Step):
    """Args: dataset, guid, size (already rounded to whole blocks), before (the size it had)."""

    kind = "pivot"
    guards = True  # changes a dataset by name: the guid there must be the one resolved

    def probe(self, ctx: StepContext) -> Probe:
        now = volsize(self, ctx)
        if now is None:
            return "foreign"
        return "done" if now >= self.arg(ctx, "size") else "absent"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.set_volsize(self.arg(ctx, "dataset"), self.arg(ctx, "size"))
