"""Hold and release a snapshot (found by guid: promote moves snapshots between datasets), so the
snapshot a saga works from cannot be destroyed under it."""
from __future__ import annotations

from zfsaga.compensations.release_hold import release_hold
from zfsaga.steps.base import Probe, Step, StepContext, find_by_guid
from zfsaga.steps.errors import NotFound


def _snapshot(step: Step, ctx: StepContext) -> str | None:
    return find_by_guid(ctx.zfs, ctx.params["sr"], step.arg(ctx, "snapshot_guid"))


def _held(step: Step, ctx: StepContext) -> bool:
    """Whether the snapshot (wherever it is now) carries this saga's hold."""
    snap = _snapshot(step, ctx)
    return snap is not None and step.arg(ctx, "tag") in ctx.zfs.holds(snap)


class HoldSnapshot(Step):
    """Args: snapshot_guid, tag. Compensation: release the hold."""

    undo = release_hold

    def probe(self, ctx: StepContext) -> Probe:
        return "done" if _held(self, ctx) else "absent"

    def act(self, ctx: StepContext) -> None:
        snap = _snapshot(self, ctx)
        if snap is None:
            raise NotFound(str(self.args["snapshot_guid"]), "the snapshot is gone")
        ctx.zfs.hold(snap, self.arg(ctx, "tag"))


class ReleaseHold(Step):
    """Args: snapshot_guid, tag. Forward-only cleanup after the pivot (retried, never undone)."""

    kind = "retriable"

    def probe(self, ctx: StepContext) -> Probe:
        return "absent" if _held(self, ctx) else "done"

    def act(self, ctx: StepContext) -> None:
        release_hold(self, ctx)
