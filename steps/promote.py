"""Promote a clone over the dataset it was cloned from. Done when the old dataset has become
the clone: its origin is now a snapshot of the promoted one."""
from __future__ import annotations

from zfsaga.steps.base import Probe, Step, StepContext, exists


def origin_of(step: Step, ctx: StepContext, key: str) -> str | None:
    name = step.arg(ctx, key)
    if not exists(ctx.zfs, name):
        return None
    return ctx.zfs.get_props(name, ["origin"])["origin"].value


class PromoteClone(Step):
    """Args: clone (the dataset to promote), old (the dataset it was cloned from), both by
    current name. Compensation: promote the old one back."""

    def probe(self, ctx: StepContext) -> Probe:
        clone, old = self.arg(ctx, "clone"), self.arg(ctx, "old")
        if (origin_of(self, ctx, "old") or "").startswith(clone + "@"):
            return "done"
        clone_origin = origin_of(self, ctx, "clone")
        if (clone_origin or "").startswith(old + "@"):
            return "absent"
        if exists(ctx.zfs, clone) and not exists(ctx.zfs, old):
            # Promoted, and the old dataset since retired or collected by a later step (a
            # journal that lost those records is resumed from here): before the promote the
            # clone depended on it, and ZFS destroys nothing a clone depends on. The plan runs
            # in order, so the clone at this name is the one the earlier steps put there.
            return "done"
        return "foreign"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.promote(self.arg(ctx, "clone"))

    def effect(self, ctx: StepContext) -> str | None:
        if (origin_of(self, ctx, "old") or "").startswith(self.arg(ctx, "clone") + "@"):
            return f"{self.arg(ctx, 'clone')} promoted over {self.arg(ctx, 'old')}"
        return None
