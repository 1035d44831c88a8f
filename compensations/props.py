"""Undo of SetUserProps: put back the values recorded before the saga, but only the properties
that still hold this saga's values (a later change by someone else is theirs to keep)."""
from __future__ import annotations

from zfsaga.compensations.registry import undoes
from zfsaga.steps.base import Step, StepContext
from zfsaga.steps.props import SetUserProps, local_values, write_props


@undoes(SetUserProps)
def restore_props(step: Step, ctx: StepContext) -> None:
    want, before = step.arg(ctx, "props"), step.arg(ctx, "before")
    now = local_values(step, ctx, list(want))
    if now is None:
        return  # the dataset is gone or moved: nothing of ours to put back here
    ours = [p for p in want if now[p] == want[p] and now[p] != before.get(p)]
    if not ours:
        return
    ctx.boundary(f"comp:{step.name}:inside")
    write_props(ctx.zfs, step.arg(ctx, "dataset"), {p: before.get(p) for p in ours})
