"""Reserve a thick volume's whole size once the space is there: a revert's new head is born
thin and reserved only after the old head is retired, whose reservation it takes over.
Reserving at birth would hold two full copies for the length of the saga, and a thick VDI on
a pool without room for a second copy could never be reverted."""
from __future__ import annotations

from zfsaga.steps.base import RETIRED, Probe, Step, StepContext, props_at


class ReserveVolume(Step):
    """Args: dataset, guid. Forward only (after the pivot), retried: reserving is idempotent
    and undoes nothing. NoSpace parks the saga, the VDI then thin; its verb has answered
    success, and the SR's next sagas retry the reserve once space is back (the engine sets
    the saga aside so it blocks nothing meanwhile)."""

    kind = "retriable"

    def probe(self, ctx: StepContext) -> Probe:
        got = props_at(ctx.zfs, self.arg(ctx, "dataset"), self.arg(ctx, "guid"),
                       ["volsize", "refreservation", RETIRED])
        if got is None or got[RETIRED].local is not None:
            # The head moved on while the reserve waited for space (destroyed, retired,
            # reverted again): nothing of this VDI is left to reserve, and a retired volume
            # keeps no reservation by design.
            return "done"
        size, reserved = got["volsize"].value, got["refreservation"].value
        return "done" if int(reserved or 0) >= int(size or 0) else "absent"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.reserve(self.arg(ctx, "dataset"))
