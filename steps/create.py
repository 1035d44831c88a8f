"""Create a volume carrying this saga's ownership tag (set atomically with it), so a crash
between the create and its journal record leaves nothing anyone could mistake for another's."""
from __future__ import annotations

from typing import Any

from zfsaga.steps.base import Probe, Step, StepContext, probe_owned, remake_half_born


class CreateVolume(Step):
    """Args: target, size, sparse, volblocksize (None: ZFS's default), props (user properties
    it is born with). Compensation: destroy it, if it is still ours."""

    FACTS = ("guid", "name")

    def probe(self, ctx: StepContext) -> Probe:
        return probe_owned(self, ctx, self.arg(ctx, "target")) or "absent"

    def act(self, ctx: StepContext) -> None:
        props = {**self.arg(ctx, "props", {}), **ctx.owner_tag(self.name)}
        remake_half_born(self, ctx, self.arg(ctx, "target"))
        ctx.zfs.create_zvol(self.arg(ctx, "target"), self.arg(ctx, "size"),
                            sparse=bool(self.arg(ctx, "sparse")),
                            volblocksize=self.arg(ctx, "volblocksize", None), props=props)

    def facts(self, ctx: StepContext) -> dict[str, Any]:
        target = self.arg(ctx, "target")
        return {"guid": ctx.zfs.get_props(target, ["guid"])["guid"].value, "name": target}
