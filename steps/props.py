"""Set (or remove) user properties of a dataset known by its guid: the metadata verbs (names,
descriptions, xapi's keys) and the mark that makes a dataset an SR. Done when every property
holds its new value; the undo puts back the values recorded before, only while ours are there."""
from __future__ import annotations

from typing import Any

from zfsaga.compensations.props import restore_props
from zfsaga.steps.base import Probe, Step, StepContext, props_at


def local_values(step: Step, ctx: StepContext, props: list[str]) -> dict[str, Any] | None:
    """The dataset's local values of props, or None when the guid is not at its name."""
    got = props_at(ctx.zfs, step.arg(ctx, "dataset"), step.arg(ctx, "guid"), props)
    return None if got is None else {p: got[p].local for p in props}


class SetUserProps(Step):
    """Args: dataset, guid, props (property -> new value, None to remove), before (property ->
    value before the saga, None where unset). Compensation: restore `before`."""

    undo = restore_props
    guards = True  # writes onto a dataset by name: the guid there must be the one resolved

    def probe(self, ctx: StepContext) -> Probe:
        want = self.arg(ctx, "props")
        now = local_values(self, ctx, list(want))
        if now is None:
            return "foreign"  # the dataset is not (or no longer) at its name
        return "done" if now == want else "absent"

    def act(self, ctx: StepContext) -> None:
        name, want = self.arg(ctx, "dataset"), self.arg(ctx, "props")
        setting = {p: v for p, v in want.items() if v is not None}
        if setting:
            ctx.zfs.set_props(name, setting)
        for prop in sorted(p for p, v in want.items() if v is None):
            ctx.zfs.inherit(name, prop)
