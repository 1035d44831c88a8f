"""Take a snapshot carrying this saga's ownership tag (set atomically with it), and destroy one
the way ZFS lets nothing be lost: deferred, so a snapshot that clones still need is marked and
goes by itself with its last clone (ZFS's own garbage collection)."""
from __future__ import annotations

from typing import Any

from zfsaga.steps.base import Probe, Step, StepContext, probe_owned
from zfsaga.steps.retire import GuardedDestroy
from zfsaga.steps.zfs.interface import Prop


class TakeSnapshot(Step):
    """Args: target (dataset@snap), props (user properties it is born with). Compensation:
    destroy it, if it is still ours."""

    FACTS = ("guid", "name")

    def probe(self, ctx: StepContext) -> Probe:
        return probe_owned(self, ctx, self.arg(ctx, "target")) or "absent"

    def act(self, ctx: StepContext) -> None:
        props = {**self.arg(ctx, "props", {}), **ctx.owner_tag(self.name)}
        ctx.zfs.snapshot([self.arg(ctx, "target")], props)

    def facts(self, ctx: StepContext) -> dict[str, Any]:
        target = self.arg(ctx, "target")
        return {"guid": ctx.zfs.get_props(target, ["guid"])["guid"].value, "name": target}


class DestroySnapshot(GuardedDestroy):
    """Args: snapshot (name), guid. Destroyed at once, or, while clones need it, marked for
    ZFS to destroy with its last clone. Forward-only: there is no undo of a destroy."""

    ARG, MARK = "snapshot", "defer_destroy"

    def kept(self, ctx: StepContext, mark: Prop) -> bool:
        return mark.value == "on"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.destroy_snapshots([self.arg(ctx, "snapshot")], defer=True)
        ctx.note(self.name, "destroyed")


class ReleaseSnapshot(DestroySnapshot):
    """The same deferred destroy as a forward-only cleanup after a clone was made from the
    snapshot (a hidden base snapshot goes with its last clone)."""

    kind = "retriable"
