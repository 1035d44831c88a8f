"""Promote a clone over the dataset it was cloned from. Done when the old dataset has become
the clone: its origin is now a snapshot of the promoted one."""
from __future__ import annotations

from zfsaga.compensations.promote import promote_back
from zfsaga.steps.base import Probe, Step, StepContext


def origin_of(step: Step, ctx: StepContext, key: str) -> str | None:
    return ctx.zfs.get_props(step.arg(ctx, key), ["origin"])["origin"].value


class PromoteClone(Step):
    """Args: clone (the dataset to promote), old (the dataset it was cloned from), both by
    current name. Compensation: promote the old one back."""

    undo = promote_back

    def probe(self, ctx: StepContext) -> Probe:
        clone, old = self.arg(ctx, "clone"), self.arg(ctx, "old")
        if (origin_of(self, ctx, "old") or "").startswith(clone + "@"):
            return "done"
        if (origin_of(self, ctx, "clone") or "").startswith(old + "@"):
            return "absent"
        return "foreign"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.promote(self.arg(ctx, "clone"))
