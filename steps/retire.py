"""Retire a dataset a saga replaced (the pivot: there is no undo of a destroy). With nothing
depending on it, it is destroyed; with snapshots or clones still needing it, it is kept and
marked retired (a hidden dataset for garbage collection once its dependents go)."""
from __future__ import annotations

from zfsaga.steps.base import RETIRED, Probe, Step, StepContext, guid_of


class RetireDataset(Step):
    """Args: dataset, guid."""

    kind = "pivot"

    def probe(self, ctx: StepContext) -> Probe:
        name = self.arg(ctx, "dataset")
        guid = guid_of(ctx.zfs, name)
        if guid is None:
            return "done"
        if guid != self.arg(ctx, "guid"):
            return "foreign"
        marked = ctx.zfs.get_props(name, [RETIRED])[RETIRED].local
        return "done" if marked == ctx.saga_id else "absent"

    def act(self, ctx: StepContext) -> None:
        name = self.arg(ctx, "dataset")
        inside = ctx.zfs.list_tree(name, ["origin"])
        if len(inside) > 1:  # snapshots (or children) still hold data others may need
            ctx.zfs.set_props(name, {RETIRED: ctx.saga_id})
        else:
            ctx.zfs.destroy(name)
