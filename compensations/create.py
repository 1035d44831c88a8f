"""Undo of CreateVolume: destroy the volume, only if it carries this step's ownership tag."""
from __future__ import annotations

from zfsaga.compensations.clone import destroy_owned
from zfsaga.steps.base import Step, StepContext


def destroy_created(step: Step, ctx: StepContext) -> None:
    destroy_owned(step, ctx)  # the same rule as an unwanted clone: ours by tag, or left alone
