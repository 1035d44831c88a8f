"""Every compensation, loaded: importing this module registers each undo with its step type
(compensations/registry.py), so whoever compensates (the engine) reads a complete table. A
compensatable step type of the step catalog without an undo is refused here, at import, not
when a saga first needs to go back."""
from __future__ import annotations

from zfsaga.compensations import holds, owned, pools, promote, props, rename  # noqa: F401
from zfsaga.compensations.registry import UNDOS, Undo
from zfsaga.steps.base import Step, StepContext
from zfsaga.steps.catalog import STEP_TYPES
from zfsaga.steps.zfs.errors import ZfsError

_MISSING = sorted(name for name, cls in STEP_TYPES.items()
                  if cls.kind == "compensatable" and cls not in UNDOS)
if _MISSING:
    raise ImportError(f"compensatable steps without an undo in compensations/: {_MISSING}")


def compensation_for(step: Step) -> Undo | None:
    """The undo of this step's type; None for a forward-only step (a pivot, a retriable)."""
    return UNDOS.get(type(step))


def compensate(step: Step, ctx: StepContext) -> None:
    """Run the step's undo. Like `Step.run`, it trusts what ZFS shows over a return code: an
    undo that failed after taking effect (a lost reply) is run once more, and every undo
    starts by probing, so the second run sees the effect gone and returns."""
    undo = compensation_for(step)
    if undo is None:
        return
    try:
        undo(step, ctx)
    except ZfsError as exc:
        if exc.transient:
            raise  # the retry runs it again
        try:
            undo(step, ctx)
        except ZfsError:
            raise exc from None
