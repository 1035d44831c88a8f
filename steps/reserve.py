"""Reserve a thick volume's whole size once the space is there: a revert's new head is born
thin and reserved only after the old head is retired, whose reservation it takes over.
Reserving at birth would hold two full copies for the length of the saga, and a thick VDI on
a pool without room for a second copy could never be reverted."""
from __future__ import annotations

from zfsaga.steps.base import Probe, Step, StepContext, props_at


class ReserveVolume(Step):
    """Args: dataset, guid. Forward only (after the pivot), retried: reserving is idempotent
    and undoes nothing. NoSpace parks the saga for an operator, the VDI then thin."""

    kind = "retriable"

    def probe(self, ctx: StepContext) -> Probe:
        got = props_at(ctx.zfs, self.arg(ctx, "dataset"), self.arg(ctx, "guid"),
                       ["volsize", "refreservation"])
        if got is None:
            return "foreign"
        size, reserved = got["volsize"].value, got["refreservation"].value
        return "done" if int(reserved or 0) >= int(size or 0) else "absent"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.reserve(self.arg(ctx, "dataset"))
