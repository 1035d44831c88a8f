"""Take a snapshot carrying this saga's ownership tag (set atomically with it), and destroy one
the way ZFS lets nothing be lost: deferred, so a snapshot that clones still need is marked and
goes by itself with its last clone (ZFS's own garbage collection)."""
from __future__ import annotations

from typing import Any

from zfsaga.compensations.snapshot import destroy_snapshot_owned
from zfsaga.steps.base import Probe, Step, StepContext, exists, find_by_guid, probe_owned


class TakeSnapshot(Step):
    """Args: target (dataset@snap), props (user properties it is born with). Compensation:
    destroy it, if it is still ours."""

    undo = destroy_snapshot_owned

    def probe(self, ctx: StepContext) -> Probe:
        return probe_owned(self, ctx, self.arg(ctx, "target")) or "absent"

    def act(self, ctx: StepContext) -> None:
        props = {**self.arg(ctx, "props", {}), **ctx.owner_tag(self.name)}
        ctx.zfs.snapshot([self.arg(ctx, "target")], props)

    def facts(self, ctx: StepContext) -> dict[str, Any]:
        target = self.arg(ctx, "target")
        return {"guid": ctx.zfs.get_props(target, ["guid"])["guid"].value, "name": target}


class DestroySnapshot(Step):
    """Args: snapshot (name), guid. Destroyed at once, or, while clones need it, marked for
    ZFS to destroy with its last clone. Forward-only: there is no undo of a destroy."""

    kind = "pivot"
    guards = True  # destroys: the guid at the name must be the one the saga resolved
    destroyed_here = False

    def probe(self, ctx: StepContext) -> Probe:
        name, guid = self.arg(ctx, "snapshot"), self.arg(ctx, "guid")
        if not exists(ctx.zfs, name):
            if self.destroyed_here:
                return "done"
            where = find_by_guid(ctx.zfs, ctx.params["sr"], guid)
            return "done" if where is None else self._marked(ctx, where)
        got = ctx.zfs.get_props(name, ["guid"])
        if got["guid"].value != guid:
            return "foreign"
        return self._marked(ctx, name)

    @staticmethod
    def _marked(ctx: StepContext, name: str) -> Probe:
        deferred = ctx.zfs.get_props(name, ["defer_destroy"])["defer_destroy"].value
        return "done" if deferred == "on" else "absent"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.destroy_snapshots([self.arg(ctx, "snapshot")], defer=True)
        self.destroyed_here = True


class ReleaseSnapshot(DestroySnapshot):
    """The same deferred destroy as a forward-only cleanup after a clone was made from the
    snapshot (a hidden base snapshot goes with its last clone)."""

    kind = "retriable"
