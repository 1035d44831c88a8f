"""Undo of TakeSnapshot: destroy the snapshot, only if it carries this step's ownership tag (a
snapshot made a moment ago has no clone: the clone step after it is undone first)."""
from __future__ import annotations

from zfsaga.compensations.clone import destroy_owned
from zfsaga.steps.base import Step, StepContext


def destroy_snapshot_owned(step: Step, ctx: StepContext) -> None:
    destroy_owned(step, ctx)  # the same rule as a clone's: ours by tag and guid, or left alone
