"""Undo of the pool steps: each acts only on the pool the step acted on (its tag or its
guid), and is a no-op when that pool is already where the undo would put it."""
from __future__ import annotations

from zfsaga.compensations.registry import undoes
from zfsaga.steps.base import OWNER, Step, StepContext, half_born
from zfsaga.steps.pools import CreatePool, ExportPool, ImportPool, import_left_behind
from zfsaga.steps.srs import MADE_POOL


@undoes(CreatePool)
def destroy_made_pool(step: CreatePool, ctx: StepContext) -> None:
    pool = step.arg(ctx, "pool")
    # A power cut can leave the pool on its devices, not imported: imported to be read.
    imported_here = import_left_behind(step, ctx)
    if ctx.zfs.pool_guid(pool) is None:
        return
    got = ctx.zfs.get_props(pool, [MADE_POOL, "creation"])
    if got[MADE_POOL].local != step.tag(ctx) and not half_born(
            step, ctx, {OWNER: got[MADE_POOL], "creation": got["creation"]}):
        if imported_here:
            ctx.zfs.export_pool(pool)  # left as it was found
        return  # not the pool this step made: someone else's, left alone
    ctx.boundary(f"comp:{step.name}:inside")
    ctx.zfs.destroy_pool(pool)


@undoes(ImportPool)
def export_imported(step: Step, ctx: StepContext) -> None:
    pool = step.arg(ctx, "pool")
    if ctx.zfs.pool_guid(pool) == step.arg(ctx, "pool_guid"):
        ctx.zfs.export_pool(pool)


@undoes(ExportPool)
def import_exported(step: Step, ctx: StepContext) -> None:
    if ctx.zfs.pool_guid(step.arg(ctx, "pool")) is None:
        ctx.zfs.import_pool(step.arg(ctx, "pool_guid"), step.arg(ctx, "devices"))
