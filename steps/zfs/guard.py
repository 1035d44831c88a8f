"""The guard: ZFS changes only inside a saga. Every change zfsaga makes is a step of a saga (or
its undo, or the journal's witness the engine raises before step 1), so that a crash anywhere
leaves a journal that says what was being done. The layer proves it on itself rather than by
reading names in the code: an armed guard refuses (OutsideSaga) any mutating call made while
no saga action is running, before it reaches ZFS.

Who tells it what:
- the engine opens `saga_action()` around each step, each undo and the witness
  (sagas/drive.py `retrying`, the one place it makes a ZFS call that changes anything);
- `zfsaga/location.py` opens `exempt(<pool>/zfsaga-state)` around making, tagging and
  mounting the state filesystem: the journal's own home, needed before any journal exists,
  so it cannot be journaled in it. The one documented exception, for that name and those
  three calls only (`EXEMPT_OPS`): a rename or a destroy of the journals' home is refused;
- `zfsaga/backend.py` arms it for every process that opens ZFS (a verb, the CLI); a test
  building a fixture by hand on its own model object leaves it unarmed.

Per backend object, not per thread: zfsaga runs one saga at a time per process (the lock), and
a plain attribute keeps the read-only verbs' start lean."""
from __future__ import annotations

from zfsaga.steps.zfs.errors import OutsideSaga

#: What making the state filesystem takes (location.py): create it, tag it, mount it.
EXEMPT_OPS = ("create_filesystem", "set_props", "mount")


class SagaGuard:
    """Whether a change may go to ZFS now. Unarmed it refuses nothing."""

    def __init__(self, armed: bool = False) -> None:
        self.armed = armed
        self.acting = 0  # saga actions open now (nested: a retry inside a step)
        self.exempt_name: str | None = None

    def check(self, op: str, name: str) -> None:
        """Refuse the change `op` of `name` unless a saga action runs, or `name` is the one
        exempted now and `op` one the exemption covers."""
        if self.armed and not self.acting and not (name == self.exempt_name
                                                   and op in EXEMPT_OPS):
            raise OutsideSaga(op, name)

    def saga_action(self) -> "_Scope":
        """The scope of one saga action (a step's act, an undo, the journal's witness)."""
        return _Scope(self, acting=1)

    def exempt(self, name: str) -> "_Scope":
        """The scope in which the `EXEMPT_OPS` of exactly `name` (and no other) pass outside
        a saga: zfsaga's state filesystem only (see the module's docstring)."""
        return _Scope(self, exempt=name)


class _Scope:
    """A `with` scope of the guard; restores what was open before (no contextlib: lean)."""

    def __init__(self, guard: SagaGuard, acting: int = 0, exempt: str | None = None) -> None:
        self.guard, self.acting, self.exempt = guard, acting, exempt
        self.outer: str | None = None

    def __enter__(self) -> None:
        self.guard.acting += self.acting
        self.outer = self.guard.exempt_name
        if self.exempt is not None:
            self.guard.exempt_name = self.exempt

    def __exit__(self, *exc: object) -> None:
        self.guard.acting -= self.acting
        self.guard.exempt_name = self.outer
