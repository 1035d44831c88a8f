"""Hold and release a snapshot (found by guid: promote moves snapshots between datasets), so the
snapshot a saga works from cannot be destroyed under it."""
from __future__ import annotations

from zfsaga.steps.base import Probe, Step, StepContext, snapshot_now
from zfsaga.steps.zfs.errors import NotFound


def _held(step: Step, ctx: StepContext) -> bool:
    """Whether the snapshot (wherever it is now) carries this saga's hold."""
    snap = snapshot_now(step, ctx)
    return snap is not None and step.arg(ctx, "tag") in ctx.zfs.holds(snap)


class HoldSnapshot(Step):
    """Args: snapshot_guid, tag, snapshot (name hint). Compensation: release the hold."""

    def probe(self, ctx: StepContext) -> Probe:
        return "done" if _held(self, ctx) else "absent"

    def act(self, ctx: StepContext) -> None:
        snap = snapshot_now(self, ctx)
        if snap is None:
            raise NotFound(str(self.args["snapshot_guid"]), "the snapshot is gone")
        ctx.zfs.hold(snap, self.arg(ctx, "tag"))

    def effect(self, ctx: StepContext) -> str | None:
        return held_effect(self, ctx)


class ReleaseHold(Step):
    """Args: as HoldSnapshot. Forward-only cleanup after the pivot (retried, never undone)."""

    kind = "retriable"

    def probe(self, ctx: StepContext) -> Probe:
        return "absent" if _held(self, ctx) else "done"

    def act(self, ctx: StepContext) -> None:
        release_own_hold(self, ctx)

    def effect(self, ctx: StepContext) -> str | None:
        return held_effect(self, ctx)


def release_own_hold(step: Step, ctx: StepContext) -> None:
    """Release this saga's hold on the snapshot, wherever it lives now; nothing when the hold
    is not there (released already, or the snapshot gone). The release after the pivot and
    the undo of HoldSnapshot (compensations/holds.py) both end a hold this way."""
    snap = snapshot_now(step, ctx)
    tag = step.arg(ctx, "tag")
    if snap is not None and tag in ctx.zfs.holds(snap):
        ctx.zfs.release(snap, tag)


def held_effect(step: Step, ctx: StepContext) -> str | None:
    snap = snapshot_now(step, ctx)
    if snap is not None and step.arg(ctx, "tag") in ctx.zfs.holds(snap):
        return f"hold {step.arg(ctx, 'tag')} on {snap}"
    return None
