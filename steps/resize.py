"""Grow a volume known by its guid: done when its volsize is at least the new size and, for a
thick volume, its reservation too. The reservation grows with it in the same call
(Zfs.set_volsize), but ZFS sets the two in two transactions: a power cut between them leaves
the volume grown and its reservation short (the power-loss replay found it), so the probe
reads both, and the act, run again, finishes the reservation.

It is a pivot, with no undo: a grown volume is never shrunk back by zfsaga, since blocks past
the old end may already hold a guest's data. Before it starts, an abort has nothing to undo;
once it has, the saga only goes forward."""
from __future__ import annotations

from zfsaga.steps.base import Probe, Step, StepContext, props_at


def sizes(step: Step, ctx: StepContext) -> tuple[int, int] | None:
    """The volume's size and reservation (0: thin), or None when its guid is not at its name."""
    got = props_at(ctx.zfs, step.arg(ctx, "dataset"), step.arg(ctx, "guid"),
                   ["volsize", "refreservation"])
    if got is None:
        return None
    reserved = got["refreservation"].value or "0"
    return int(got["volsize"].value), int(reserved) if reserved.isdigit() else 0


class GrowVolume(Step):
    """Args: dataset, guid, size (already rounded to whole blocks), before (the size it had)."""

    kind = "pivot"
    guards = True  # changes a dataset by name: the guid there must be the one resolved

    def probe(self, ctx: StepContext) -> Probe:
        now = sizes(self, ctx)
        if now is None:
            return "foreign"
        size, reserved = now
        short = 0 < reserved < self.arg(ctx, "size")  # thick, cut between its two writes
        return "done" if size >= self.arg(ctx, "size") and not short else "absent"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.set_volsize(self.arg(ctx, "dataset"), self.arg(ctx, "size"))
