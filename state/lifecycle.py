"""The saga lifecycle, a `transitions` state machine: the one authority on legal moves.

The engine asks the machine for the next status, journals the event with that status, and only
then acts; the machine never performs ZFS work and never persists anything itself. `transitions`
is imported on first use, so read-only commands never load it.

    pending ──start──▶ running ──finish──▶ succeeded
       │                  │ ▲
       │          compensate│ │resume (operator, or recovery)
       ▼                  ▼ │
    compensating ◀──abort── stuck ──abandon──▶ abandoned
       │                  ▲
       └──compensated──▶ compensated        (park: any active state ──▶ stuck)
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

STATES = ["pending", "running", "compensating", "succeeded", "compensated", "stuck", "abandoned"]
ACTIVE = ("pending", "running", "compensating", "stuck")
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": ["pending", "running"], "dest": "running"},
    {"trigger": "finish", "source": "running", "dest": "succeeded"},
    {"trigger": "compensate", "source": ["pending", "running", "compensating"],
     "dest": "compensating", "conditions": "abortable"},
    {"trigger": "compensated", "source": "compensating", "dest": "compensated"},
    {"trigger": "park", "source": ["pending", "running", "compensating", "stuck"],
     "dest": "stuck"},
    {"trigger": "resume", "source": "stuck", "dest": "running", "conditions": "plan_known"},
    {"trigger": "resume_compensating", "source": "stuck", "dest": "compensating",
     "conditions": ["plan_known", "abortable"]},
    {"trigger": "abort", "source": ["pending", "running", "stuck"], "dest": "compensating",
     "conditions": ["plan_known", "abortable"]},
    {"trigger": "abandon", "source": ["pending", "running", "compensating", "stuck"],
     "dest": "abandoned"},
]


def _sources(transition: dict[str, Any]) -> list[str]:
    source = transition["source"]
    return source if isinstance(source, list) else [source]


def legal_move(source: str, dest: str) -> bool:
    """Whether some trigger leads from source to dest, whatever its conditions (for checking a
    recorded history; plain data, so the journal can ask without importing transitions)."""
    return any(dest == t["dest"] and source in _sources(t) for t in TRANSITIONS)


class IllegalMove(RuntimeError):
    """The lifecycle forbids this move from this status (or its condition is false)."""


class _Saga:
    """What the machine looks at: a status and the facts its conditions need."""

    def __init__(self, status: str, abortable: bool, plan_known: bool) -> None:
        self.state = status
        self._abortable = abortable
        self._plan_known = plan_known

    def abortable(self) -> bool:
        return self._abortable

    def plan_known(self) -> bool:
        return self._plan_known


@lru_cache(maxsize=1)
def machine() -> Any:
    from transitions import Machine

    return Machine(model=None, states=STATES, transitions=TRANSITIONS, initial=None,
                   auto_transitions=False, ignore_invalid_triggers=False)


def next_status(status: str, trigger: str, *, abortable: bool = True,
                plan_known: bool = True) -> str:
    """The status `trigger` leads to from `status`, or IllegalMove saying why not."""
    from transitions import MachineError

    m = machine()
    saga = _Saga(status, abortable, plan_known)
    m.add_model(saga, initial=status)
    try:
        if not getattr(saga, trigger)():
            why = []
            if not abortable:
                why.append("a forward-only step (the pivot or after) has started")
            if not plan_known:
                why.append("its recorded plan is not one this zfsaga knows")
            raise IllegalMove(f"cannot {trigger} a {status} saga: {'; '.join(why) or 'refused'}")
        return saga.state
    except MachineError:
        raise IllegalMove(f"cannot {trigger} a saga that is {status}") from None
    finally:
        m.remove_model(saga)


def mermaid_lifecycle(current: str | None = None) -> str:
    """The lifecycle as a Mermaid stateDiagram, the current status highlighted."""
    lines = ["stateDiagram-v2", "    [*] --> pending"]
    for t in TRANSITIONS:
        for source in _sources(t):
            if source != t["dest"] or t["trigger"] == "start":
                lines.append(f"    {source} --> {t['dest']}: {t['trigger']}")
    for final in ("succeeded", "compensated", "abandoned"):
        lines.append(f"    {final} --> [*]")
    if current:
        lines.append("    classDef here fill:#f96,stroke:#333,stroke-width:3px")
        lines.append(f"    class {current} here")
    return "\n".join(lines)
