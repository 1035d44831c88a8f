"""Undo of PromoteClone: promote the old dataset back, so the snapshots return to it."""
from __future__ import annotations

from zfsaga.compensations.registry import undoes
from zfsaga.steps.base import Step, StepContext, exists
from zfsaga.steps.promote import PromoteClone


@undoes(PromoteClone)
def promote_back(step: Step, ctx: StepContext) -> None:
    clone, old = step.arg(ctx, "clone"), step.arg(ctx, "old")
    if not exists(ctx.zfs, old):
        return
    origin = ctx.zfs.get_props(old, ["origin"])["origin"].value or ""
    if origin.startswith(clone + "@"):
        ctx.boundary(f"comp:{step.name}:inside")
        ctx.zfs.promote(old)
