"""Retire a dataset a saga replaced (the pivot: there is no undo of a destroy). With nothing
depending on it, it is destroyed; with snapshots or clones still needing it, it is kept and
marked retired (a hidden dataset for garbage collection once its dependents go)."""
from __future__ import annotations

from zfsaga.steps.base import RETIRED, Probe, Step, StepContext


class RetireDataset(Step):
    """Args: dataset, guid."""

    kind = "pivot"
    guards = True  # destroys: the guid at the name must be the one the saga resolved

    def probe(self, ctx: StepContext) -> Probe:
        name = self.arg(ctx, "dataset")
        if not ctx.zfs.exists(name):
            return "done"
        props = ctx.zfs.get_props(name, ["guid", RETIRED])
        if props["guid"].value != self.arg(ctx, "guid"):
            return "foreign"
        return "done" if props[RETIRED].local == ctx.saga_id else "absent"

    def act(self, ctx: StepContext) -> None:
        name = self.arg(ctx, "dataset")
        inside = ctx.zfs.list_tree(name, ["origin"])
        if len(inside) > 1:  # snapshots (or children) still hold data others may need
            ctx.zfs.set_props(name, {RETIRED: ctx.saga_id})
        else:
            ctx.zfs.destroy(name)
