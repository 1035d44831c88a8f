"""Undo of RenameDataset: move the dataset (by guid) back to its old name."""
from __future__ import annotations

from zfsaga.compensations.registry import undoes
from zfsaga.steps.base import Foreign, Step, StepContext, guid_of
from zfsaga.steps.rename import RenameDataset


@undoes(RenameDataset)
def rename_back(step: Step, ctx: StepContext) -> None:
    guid, source, target = (step.arg(ctx, k) for k in ("guid", "source", "target"))
    if guid_of(ctx.zfs, source) == guid:
        return  # never renamed, or already back
    if guid_of(ctx.zfs, target) != guid:
        raise Foreign(target, f"dataset {guid} is neither at {source} nor at {target}")
    ctx.boundary(f"comp:{step.name}:inside")
    ctx.zfs.rename(target, source)
