"""Clone a snapshot (found by guid) into a new dataset carrying this saga's ownership tag."""
from __future__ import annotations

from typing import Any

from zfsaga.steps.base import (OWNER, Probe, Step, StepContext, exists, find_tagged,
                               probe_owned, remake_half_born, snapshot_now)
from zfsaga.steps.zfs.errors import NotFound, ZfsError


class CloneSnapshot(Step):
    """Args: snapshot_guid (and its name hint, snapshot), target; optionally props (user
    properties the clone is born with, beside the ownership tag) and reserve (reserve its whole
    size: a thick volume's replacement stays thick). Compensation: destroy the clone, if it is
    still ours."""

    FACTS = ("guid", "name")

    def probe(self, ctx: StepContext) -> Probe:
        at_name = probe_owned(self, ctx, self.arg(ctx, "target"))
        # Made but not yet thick: the act reserves it. Only a clone call that failed, in this
        # process or in a dead one, can leave that (see `_unreserved`): a clone that returned
        # is reserved, and its re-probe reads nothing more.
        suspect = self.name in ctx.cut_off or ctx.noted(self.name, "clone failed")
        unreserved = at_name == "done" and suspect and self._unreserved(ctx)
        ctx.note(self.name, "found unreserved", unreserved)  # what the act then does
        if unreserved:
            return "absent"
        if at_name is not None:
            return at_name
        # Not at its name: it may have been made and moved on by a later step (the clone of a
        # revert becomes the VDI) whose record the journal lost. Its tag says where it went.
        return "done" if self._moved_to(ctx) else "absent"

    def act(self, ctx: StepContext) -> None:
        snap = snapshot_now(self, ctx)
        if snap is None:
            raise NotFound(str(self.args["snapshot_guid"]), "the snapshot is gone")
        target = self.arg(ctx, "target")
        if ctx.noted(self.name, "found unreserved"):
            ctx.zfs.reserve(target)  # NoSpace: the step fails and its undo destroys the clone
            return
        props = {**self.arg(ctx, "props", {}), **ctx.owner_tag(self.name)}
        remake_half_born(self, ctx, target)
        try:
            ctx.zfs.clone(snap, target, props, reserve=bool(self.arg(ctx, "reserve", False)))
        except ZfsError:
            ctx.note(self.name, "clone failed")
            raise

    def facts(self, ctx: StepContext) -> dict[str, Any]:
        target = self.arg(ctx, "target")
        where = target if exists(ctx.zfs, target) else self._moved_to(ctx)
        return {"guid": ctx.zfs.get_props(where, ["guid"])["guid"].value, "name": target}

    def _unreserved(self, ctx: StepContext) -> bool:
        """Whether our clone, which is at the target, should be thick and lacks its
        reservation. ZFS 2.1.11 keeps a clone it made but could not reserve; the layer
        destroys it (RealZfs._clone), but a process killed before that, or a destroy that
        failed, leaves it, tagged: it is not done until it is reserved."""
        target = self.arg(ctx, "target")
        if not self.arg(ctx, "reserve", False):
            return False
        got = ctx.zfs.get_props(target, [OWNER, "volsize", "refreservation"])
        if got[OWNER].local != ctx.owner_tag(self.name)[OWNER] or got["volsize"].value is None:
            return False
        return int(got["refreservation"].value or 0) < int(got["volsize"].value)

    def _moved_to(self, ctx: StepContext) -> str | None:
        return find_tagged(ctx.zfs, ctx.params["sr"], ctx.owner_tag(self.name)[OWNER])
