"""Undo of the steps that make a dataset or snapshot tagged as their own (CreateVolume,
CloneSnapshot, TakeSnapshot): destroy it, but only if it carries this step's ownership tag as a
local property (or is its half-born dataset), and, when recorded, the guid it was born with."""
from __future__ import annotations

from zfsaga.compensations.registry import undoes
from zfsaga.steps.base import OWNER, Step, StepContext, exists, half_born
from zfsaga.steps.clone import CloneSnapshot
from zfsaga.steps.create import CreateVolume
from zfsaga.steps.snapshot import TakeSnapshot


@undoes(CreateVolume, CloneSnapshot, TakeSnapshot)
def destroy_owned(step: Step, ctx: StepContext) -> None:
    target = step.arg(ctx, "target")
    if not exists(ctx.zfs, target):  # never made (a name ZFS could not hold counts as absent)
        return
    props = ctx.zfs.get_props(target, [OWNER, "guid", "creation"])
    if props[OWNER].local != ctx.owner_tag(step.name)[OWNER] and not half_born(step, ctx, props):
        return  # someone else's: not ours to destroy
    recorded = ctx.facts.get(step.name, {}).get("guid")
    if recorded is not None and props["guid"].value != recorded:
        return
    ctx.boundary(f"comp:{step.name}:inside")
    if "@" in target:  # a snapshot the step took (made a moment ago: no clone of it yet)
        ctx.zfs.destroy_snapshots([target])
    else:
        ctx.zfs.destroy(target)
