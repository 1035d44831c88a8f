"""Where a saga stands, read from its journal record: its plan rebuilt into steps, the last
event of each step, and what that means (can it still be aborted, did its effect take place,
which way was it going when it was parked). Read only: nothing here writes the journal or
touches ZFS, so the engine's loops, recovery, the operator's verbs and forensics all read a
saga the same way.

Also how a run ends (`Outcome`), the one answer every way of driving a saga gives."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from zfsaga.state.journal import Journal, SagaRow
from zfsaga.steps.base import Step, StepContext
from zfsaga.steps.catalog import UnknownPlan, rebuild
from zfsaga.steps.zfs.interface import Zfs

#: The events that say where one step stands (the rest speak of the saga as a whole).
STEP_EVENTS = ("step_started", "step_done", "step_failed", "comp_started", "comp_done",
               "comp_failed")
#: Step kinds that cannot be undone: once one has begun, the saga can only go forward.
FORWARD_ONLY = ("pivot", "retriable")


class SagaNotFound(LookupError):
    """No saga of that id in the journal."""


@dataclass
class Outcome:
    """How a run ended. `effect_taken`: the saga is stuck, but what it was for took place (every
    step before its forward-only tail is done, its pivot included): only cleanup is left, which
    an operator's resume, or the SR's next saga, finishes (plugin/errors.py require_effect)."""

    saga_id: str
    status: str
    error: str | None = None
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    effect_taken: bool = False


@dataclass
class Progress:
    """One saga as its journal tells it: its row, rebuilt steps, context and last event per
    step. The engine's loops update `last` and `attempts` as they go."""

    row: SagaRow
    steps: list[Step]
    ctx: StepContext
    last: dict[str, str]
    attempts: dict[str, int]
    final_event: str = ""
    fresh: bool = False
    #: The caller's read and the step it follows (Saga.READ): only in the process that began
    #: the saga, never journaled.
    read: Callable[[dict[str, dict[str, Any]]], None] | None = None
    read_after: str | None = None

    def abortable(self) -> bool:
        """No forward-only step has begun: compensating can still undo all of it."""
        return not any(s.kind in FORWARD_ONLY and s.name in self.last for s in self.steps)

    def effect_taken(self) -> bool:
        """Whether the saga's effect is in place. A saga module that names the step after
        which the caller's request holds (`EFFECT`: a revert's VDI holds the snapshot's data
        once its promote is done, whatever becomes of the old head) is judged by that step.
        Otherwise: every step before the plan's forward-only tail (the cleanup: release,
        collect, index, reserve) and every pivot is done. A plan whose last step can be
        undone (sr.destroy's unmark) has no tail: all must be done."""
        from zfsaga.sagas.catalog import saga_module

        effect = getattr(saga_module(self.row.kind), "EFFECT", None)
        if effect in {s.name for s in self.steps}:
            return self.last.get(effect) == "step_done"
        tail = len(self.steps)
        while tail > 0 and self.steps[tail - 1].kind in FORWARD_ONLY:
            tail -= 1
        needed = [s for i, s in enumerate(self.steps) if i < tail or s.kind == "pivot"]
        return all(self.last.get(s.name) == "step_done" for s in needed or self.steps[:1])

    def pivots_done(self) -> bool:
        """Every pivot is done: what is left is forward-only cleanup (release a hold, collect
        a retired head, index, reserve), each guarded by guid, safe to run after other sagas.
        A pivot not done (a revert's old head not yet retired) would let another saga see
        that head as the VDI."""
        return all(self.last.get(s.name) == "step_done" for s in self.steps
                   if s.kind == "pivot")


def load(row: SagaRow, journal: Journal, zfs: Zfs,
         boundary: Callable[[str], None]) -> Progress:
    """The saga of `row` as its events tell it (UnknownPlan when its plan is not one this
    code can rebuild)."""
    steps = rebuild(row.plan)
    events = row.events or list(journal.events(row.id))
    last: dict[str, str] = {}
    attempts: dict[str, int] = {}
    facts: dict[str, dict[str, Any]] = {}
    # Steps whose last attempt was started and never answered: the process died in the
    # act, which may have left its effect half made (steps/base.py: half_born).
    cut_off: dict[str, float] = {}
    for ev in events:
        if ev.step is not None and ev.type in STEP_EVENTS:
            last[ev.step] = ev.type
            if ev.type == "step_started":
                attempts[ev.step] = ev.attempt or attempts.get(ev.step, 0) + 1
                cut_off[ev.step] = ev.ts
            if ev.type in ("step_done", "step_failed"):
                cut_off.pop(ev.step, None)
            if ev.type == "step_done":
                facts[ev.step] = ev.data
    ctx = StepContext(zfs, row.id, row.params, facts, boundary, cut_off)
    # Recovery bookkeeping does not change what the saga last said about itself.
    said = [ev.type for ev in events if ev.type != "recovery_started"]
    return Progress(row, steps, ctx, last, attempts, said[-1] if said else "")


def plan_known(row: SagaRow) -> bool:
    """Whether this code knows the saga's kind at its recorded version and every step of its
    recorded plan: only then may it be driven (otherwise it is parked, or abandoned)."""
    from zfsaga.sagas.catalog import saga_module

    module = saga_module(row.kind)
    if module is None or module.VERSION != row.kind_version:
        return False
    try:
        rebuild(row.plan)
    except UnknownPlan:
        return False
    return True


def direction(row: SagaRow) -> str:
    """The way a saga not parked is going: "compensating" or "running"."""
    return "compensating" if row.status == "compensating" else "running"


def parked_direction(row: SagaRow) -> str:
    """The way a stuck saga was going when it was parked (its last `saga_stuck` says)."""
    for ev in reversed(row.events):
        if ev.type == "saga_stuck":
            return ev.data.get("direction", "running")
    return "running"
