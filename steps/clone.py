"""Clone a snapshot (found by guid) into a new dataset carrying this saga's ownership tag."""
from __future__ import annotations

from typing import Any

from zfsaga.compensations.clone import destroy_owned
from zfsaga.steps.base import (OWNER, Probe, Step, StepContext, exists, find_tagged,
                               probe_owned, remake_half_born, snapshot_now)
from zfsaga.steps.zfs.errors import NotFound


class CloneSnapshot(Step):
    """Args: snapshot_guid (and its name hint, snapshot), target; optionally props (user
    properties the clone is born with, beside the ownership tag) and reserve (reserve its whole
    size: a thick volume's replacement stays thick). Compensation: destroy the clone, if it is
    still ours."""

    undo = destroy_owned

    def probe(self, ctx: StepContext) -> Probe:
        at_name = probe_owned(self, ctx, self.arg(ctx, "target"))
        if at_name is not None:
            return at_name
        # Not at its name: it may have been made and moved on by a later step (the clone of a
        # revert becomes the VDI) whose record the journal lost. Its tag says where it went.
        return "done" if self._moved_to(ctx) else "absent"

    def act(self, ctx: StepContext) -> None:
        snap = snapshot_now(self, ctx)
        if snap is None:
            raise NotFound(str(self.args["snapshot_guid"]), "the snapshot is gone")
        props = {**self.arg(ctx, "props", {}), **ctx.owner_tag(self.name)}
        remake_half_born(self, ctx, self.arg(ctx, "target"))
        ctx.zfs.clone(snap, self.arg(ctx, "target"), props,
                      reserve=bool(self.arg(ctx, "reserve", False)))

    def facts(self, ctx: StepContext) -> dict[str, Any]:
        target = self.arg(ctx, "target")
        where = target if exists(ctx.zfs, target) else self._moved_to(ctx)
        return {"guid": ctx.zfs.get_props(where, ["guid"])["guid"].value, "name": target}

    def _moved_to(self, ctx: StepContext) -> str | None:
        return find_tagged(ctx.zfs, ctx.params["sr"], ctx.owner_tag(self.name)[OWNER])
