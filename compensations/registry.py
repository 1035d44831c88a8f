"""The one table that binds each step type to its undo. A compensation module imports the step
types it undoes and registers its function with `@undoes(StepType, ...)`; a step knows nothing
of its undo (steps/ never imports compensations/), so the arrows point one way: compensations
over steps. The table is only complete once every compensation module is loaded: read it
through compensations/catalog.py, which loads them all."""
from __future__ import annotations

from typing import Callable, TypeVar

from zfsaga.steps.base import Step, StepContext

Undo = Callable[[Step, StepContext], None]
U = TypeVar("U", bound=Callable[..., None])

#: Step type -> its undo, a function of compensations/ taking (step, ctx).
UNDOS: dict[type[Step], Undo] = {}


class DuplicateUndo(ValueError):
    """A step type given a second undo: which one compensates would depend on import order."""


def undoes(*step_types: type[Step]) -> Callable[[U], U]:
    """Register the decorated function as the undo of each of `step_types`. Refuses a step
    type that already has one, and one that is never compensated (a pivot or a retriable
    step only goes forward: an undo of it would never run, and would mislead its reader)."""
    def register(fn: U) -> U:
        for cls in step_types:
            if cls.kind != "compensatable":
                raise TypeError(f"{cls.__name__} is {cls.kind}: it has no undo "
                                f"({fn.__module__}.{fn.__name__})")
            held = UNDOS.get(cls)
            if held is not None and held is not fn:
                raise DuplicateUndo(f"{cls.__name__} already has its undo, "
                                    f"{held.__module__}.{held.__name__}: not also "
                                    f"{fn.__module__}.{fn.__name__}")
        for cls in step_types:
            UNDOS[cls] = fn
        return fn
    return register
