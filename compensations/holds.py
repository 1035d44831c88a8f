"""Undo of HoldSnapshot: release this saga's hold, wherever the snapshot now lives."""
from __future__ import annotations

from zfsaga.steps.base import Step, StepContext, snapshot_now


def release_hold(step: Step, ctx: StepContext) -> None:
    snap = snapshot_now(step, ctx)
    tag = step.arg(ctx, "tag")
    if snap is not None and tag in ctx.zfs.holds(snap):
        ctx.zfs.release(snap, tag)
