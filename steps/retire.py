"""Retire a dataset a saga replaced (the pivot: there is no undo of a destroy). With nothing
depending on it, it is destroyed; with snapshots or clones still needing it, it is kept and
marked retired (a hidden dataset for garbage collection once its dependents go).

`GuardedDestroy` is the probe every destroying pivot shares: the guid must be at the name
before the act, and a name's absence alone never counts as done."""
from __future__ import annotations

from typing import ClassVar

from zfsaga.steps.base import RETIRED, Probe, Step, StepContext, exists, find_by_guid, props_at
from zfsaga.steps.zfs.interface import Prop


class GuardedDestroy(Step):
    """A pivot that destroys the object with `guid` at its name, or leaves it kept and marked
    (`MARK`) while others need it. Subclasses name their argument and say what `kept` means."""

    kind = "pivot"
    guards = True  # destroys: the guid at the name must be the one the saga resolved
    ARG: ClassVar[str]
    MARK: ClassVar[str]

    def kept(self, ctx: StepContext, mark: Prop) -> bool:
        raise NotImplementedError

    def probe(self, ctx: StepContext) -> Probe:
        name, guid = self.arg(ctx, self.ARG), self.arg(ctx, "guid")
        if not exists(ctx.zfs, name):
            if ctx.noted(self.name, "destroyed"):
                return "done"  # this process destroyed that guid at that name a moment ago
            # A name's absence proves nothing (renamed by someone, or its SR renamed): done
            # only if the object with this guid is gone, or kept by this saga, wherever.
            where = find_by_guid(ctx.zfs, ctx.params["sr"], guid)
            if where is None:
                return "done"
            mark = ctx.zfs.get_props(where, [self.MARK])[self.MARK]
            return "done" if self.kept(ctx, mark) else "foreign"
        got = props_at(ctx.zfs, name, guid, [self.MARK])
        if got is None:
            return "foreign"
        return "done" if self.kept(ctx, got[self.MARK]) else "absent"


class RetireDataset(GuardedDestroy):
    """Args: dataset, guid."""

    ARG, MARK = "dataset", RETIRED

    def kept(self, ctx: StepContext, mark: Prop) -> bool:
        return mark.local == ctx.saga_id

    def act(self, ctx: StepContext) -> None:
        name = self.arg(ctx, "dataset")
        inside = ctx.zfs.list_tree(name, ["origin"])
        # Snapshots (or children) still hold data others may need; bookmarks are the history
        # of metadata-only VDIs (Volume.data_destroy), which a destroy would take with it.
        if len(inside) > 1 or ctx.zfs.bookmarks(name):
            # Its snapshots keep what they need without it: a thick volume's reservation
            # would hold a whole volume's worth of the SR's space for a disk nobody sees.
            # One `zfs set`, one ioctl: the mark and the release land together.
            ctx.zfs.set_props(name, {RETIRED: ctx.saga_id, "refreservation": "0"})
        else:
            ctx.zfs.destroy(name)  # the guarded probe checked the guid at this name just now
            ctx.note(self.name, "destroyed")
