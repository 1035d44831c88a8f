"""Set (or remove) user properties of a dataset known by its guid: the metadata verbs (names,
descriptions, xapi's keys) and the mark that makes a dataset an SR. Done when every property
holds its new value; the undo (compensations/props.py) puts back the values recorded before,
only while ours are there.

`write_props` is the one way zfsaga writes a set of properties where some are to go: the
step's act, its undo and the SR's snapshot index (steps/index.py) all call it."""
from __future__ import annotations

from typing import Any, Mapping

from zfsaga.steps.base import Probe, Step, StepContext, props_at
from zfsaga.steps.zfs.interface import Zfs


def write_props(zfs: Zfs, dataset: str, values: Mapping[str, str | None]) -> None:
    """Set these properties, inherit the rest: every value in one `zfs set`, then each None
    inherited (a user property inherited from nowhere is removed), in name order so a crash
    point falls at the same place on every run."""
    setting = {p: v for p, v in values.items() if v is not None}
    if setting:
        zfs.set_props(dataset, setting)
    for prop in sorted(p for p, v in values.items() if v is None):
        zfs.inherit(dataset, prop)


def local_values(step: Step, ctx: StepContext, props: list[str]) -> dict[str, Any] | None:
    """The dataset's local values of props, or None when the guid is not at its name."""
    got = props_at(ctx.zfs, step.arg(ctx, "dataset"), step.arg(ctx, "guid"), props)
    return None if got is None else {p: got[p].local for p in props}


class SetUserProps(Step):
    """Args: dataset, guid, props (property -> new value, None to remove), before (property ->
    value before the saga, None where unset). Compensation: restore `before`."""

    guards = True  # writes onto a dataset by name: the guid there must be the one resolved

    def probe(self, ctx: StepContext) -> Probe:
        want = self.arg(ctx, "props")
        now = local_values(self, ctx, list(want))
        if now is None:
            return "foreign"  # the dataset is not (or no longer) at its name
        return "done" if now == want else "absent"

    def act(self, ctx: StepContext) -> None:
        write_props(ctx.zfs, self.arg(ctx, "dataset"), self.arg(ctx, "props"))
