"""Undo of TakeSnapshot: destroy the snapshot, only if it carries this step's ownership tag (a
snapshot made a moment ago has no clone: the clone step after it is undone first)."""
from __future__ import annotations

from zfsaga.steps.base import OWNER, Step, StepContext, exists


def destroy_snapshot_owned(step: Step, ctx: StepContext) -> None:
    target = step.arg(ctx, "target")
    if not exists(ctx.zfs, target):
        return
    if ctx.zfs.get_props(target, [OWNER])[OWNER].local != ctx.owner_tag(step.name)[OWNER]:
        return  # someone else's: not ours to destroy
    ctx.boundary(f"comp:{step.name}:inside")
    ctx.zfs.destroy_snapshots([target])
