"""Retire a dataset a saga replaced (the pivot: there is no undo of a destroy). With nothing
depending on it, it is destroyed; with snapshots or clones still needing it, it is kept and
marked retired (a hidden dataset for garbage collection once its dependents go)."""
from __future__ import annotations

from zfsaga.steps.base import RETIRED, Probe, Step, StepContext, exists, find_by_guid


class RetireDataset(Step):
    """Args: dataset, guid."""

    kind = "pivot"
    guards = True  # destroys: the guid at the name must be the one the saga resolved

    def probe(self, ctx: StepContext) -> Probe:
        name, guid = self.arg(ctx, "dataset"), self.arg(ctx, "guid")
        if not exists(ctx.zfs, name):
            if self.destroyed_here:
                return "done"  # this process destroyed that guid at that name a moment ago
            # A name's absence proves nothing (renamed by someone, or its SR renamed): done
            # only if the dataset with this guid is gone, or retired by this saga, wherever.
            where = find_by_guid(ctx.zfs, ctx.params["sr"], guid)
            if where is None:
                return "done"
            mark = ctx.zfs.get_props(where, [RETIRED])[RETIRED].local
            return "done" if mark == ctx.saga_id else "foreign"
        props = ctx.zfs.get_props(name, ["guid", RETIRED])
        if props["guid"].value != guid:
            return "foreign"
        return "done" if props[RETIRED].local == ctx.saga_id else "absent"

    destroyed_here = False

    def act(self, ctx: StepContext) -> None:
        name = self.arg(ctx, "dataset")
        inside = ctx.zfs.list_tree(name, ["origin"])
        if len(inside) > 1:  # snapshots (or children) still hold data others may need
            ctx.zfs.set_props(name, {RETIRED: ctx.saga_id})
        else:
            ctx.zfs.destroy(name)  # the guarded probe checked the guid at this name just now
            self.destroyed_here = True
