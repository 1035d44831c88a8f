"""Every compensation, loaded: importing this module registers each undo with its step type
(compensations/registry.py), so whoever compensates (the engine) reads a complete table. A
compensatable step type of the step catalog without an undo is refused here, at import, not
when a saga first needs to go back; so is a step type that still names its undo itself (the
`undo = fn` attribute of zfsaga before the registry), which nothing would ever call."""
from __future__ import annotations

from zfsaga.compensations import bookmarks, holds, owned, pools, promote, props, rename  # noqa: F401
from zfsaga.compensations.registry import UNDOS, Undo
from zfsaga.steps.base import Step, StepContext
from zfsaga.steps.catalog import STEP_TYPES
from zfsaga.steps.zfs.errors import ZfsError

def unbound(step_types: dict[str, type[Step]]) -> list[str]:
    """What keeps the table from binding every step type to its undo, in words; [] when
    nothing does."""
    return [f"{name} is compensatable and has no undo registered in compensations/"
            for name, cls in sorted(step_types.items())
            if cls.kind == "compensatable" and cls not in UNDOS] + \
        [f"{name} names its undo itself: register it in compensations/ with @undoes"
         for name, cls in sorted(step_types.items())
         if any("undo" in vars(base) for base in cls.__mro__)]


_UNBOUND = unbound(STEP_TYPES)
if _UNBOUND:
    raise ImportError("; ".join(_UNBOUND))


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
