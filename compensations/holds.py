"""Undo of HoldSnapshot: release this saga's hold, wherever the snapshot now lives (the same
release the saga makes going forward after its pivot, steps/holds.py)."""
from __future__ import annotations

from zfsaga.compensations.registry import undoes
from zfsaga.steps.base import Step, StepContext
from zfsaga.steps.holds import HoldSnapshot, release_own_hold


@undoes(HoldSnapshot)
def release_hold(step: Step, ctx: StepContext) -> None:
    release_own_hold(step, ctx)
