"""The engine's two loops: run a recorded saga's plan forward, or compensate it backward,
writing every intent to the journal before the ZFS call and every completion after the probe
confirms it. A fresh run (sagas/engine.py), a healed orphan (sagas/recovery.py) and an
operator's resume or abort (sagas/operator.py) all drive a saga through here.

Rules (docs/architecture.md):
- A step is retried only for transient ZFS errors (tenacity, bounded, jittered), and the whole
  step is retried (probe + act), so an act that failed after taking effect is seen as done.
- A permanent failure before any forward-only step has started compensates; after, it parks the
  saga as stuck (forward failed, and backward would need an undo that does not exist).
- Compensation runs in reverse plan order over every step with any event, not only finished
  ones; a failing compensation parks the saga and stops (ZFS dependencies make order matter).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from zfsaga.compensations.catalog import compensate
from zfsaga.sagas import progress
from zfsaga.sagas.contract import Read
from zfsaga.sagas.progress import Outcome, Progress, SagaNotFound
from zfsaga.sagas.witness import Witness
from zfsaga.state.journal import Journal, SagaRow
from zfsaga.state.lifecycle import next_status
from zfsaga.state.locks import NestedLock, ResourceLock
from zfsaga.steps.catalog import UnknownPlan
from zfsaga.steps.zfs.errors import ZfsError
from zfsaga.steps.zfs.interface import Zfs
from zfsaga.steps.zfs.retry import retry_transient


class Driver:
    """Drives recorded sagas of one journal on one ZFS. Holds what every job of the engine
    shares: the ZFS layer, the journal and its witness, the state directory (locks), the
    fault boundary, the retry policy and who acts (an operator, or None for a verb)."""

    def __init__(self, zfs: Zfs, journal: Journal, state_dir: str | os.PathLike[str], *,
                 boundary: Callable[[str], None] | None = None, max_auto: int = 3,
                 lock_wait: float = 60.0, retry_sleep: Callable[[float], None] | None = None,
                 actor: str | None = None) -> None:
        self.zfs = zfs
        self.journal = journal
        self.state_dir = Path(state_dir)
        self.boundary = boundary or (lambda label: None)
        self.max_auto = max_auto
        self.lock_wait = lock_wait
        self.retry_sleep = retry_sleep
        self.actor = actor
        self.witness = Witness(zfs, journal)

    # -- driving -------------------------------------------------------------------------------
    def drive_and_checkpoint(self, saga_id: str, fresh: bool = False,
                             read: Read | None = None) -> Outcome:
        """Drive a saga a verb or an operator asked for, then checkpoint the WAL into the main
        file, whatever the end: `journal.db` itself holds what was committed."""
        try:
            return self.drive(saga_id, fresh=fresh, read=read)
        finally:
            self.journal.checkpoint()

    def drive(self, saga_id: str, fresh: bool = False, read: Read | None = None) -> Outcome:
        """Drive a saga in its direction. `fresh`: created by this process a moment ago,
        under the lock it still holds (its first attempts may skip the probe, and its SR was
        identified just now). `read`: its caller's, run after its READ step
        (sagas/contract.py)."""
        from zfsaga.sagas.catalog import saga_module

        row = self.row(saga_id)
        try:
            run = self.load(row)
        except UnknownPlan as exc:
            return self.park(saga_id, row.status, str(exc))
        run.fresh = fresh
        if read is not None:
            run.read, run.read_after = read, saga_module(row.kind).READ
        if not fresh and not row.terminal:
            moved = self.sr_moved(row)
            if moved:
                return self.park(saga_id, progress.direction(row), moved)
        if row.status == "pending":
            self.journal.append(saga_id, "saga_started", status=next_status("pending", "start"),
                                count_attempt=True, claim=True)
            row.status = "running"
        if row.status == "running":
            failed = self._failed_permanently(run)
            if failed is None:
                return self._forward(run)
            return self._after_failure(run, failed)
        if row.status == "compensating":
            return self._backward(run)
        return Outcome(saga_id, row.status, row.last_error, run.ctx.facts)

    def _forward(self, run: Progress) -> Outcome:
        sid = run.row.id
        if run.fresh and not run.last:
            error = self.witness.advance(run.row, lambda fn: self.retrying(fn, self.log(run.row)))
            if error is not None:
                return self._after_failure(run, error)
        for step in run.steps:
            if run.last.get(step.name) == "step_done":
                continue
            log = self.log(run.row, step.name)
            attempt = run.attempts.get(step.name, 0) + 1
            run.attempts[step.name] = attempt
            # No earlier intent in the journal of a saga this process began: nothing of this
            # step can have happened yet, so its first try may skip the probe; a retry always
            # probes, and so does every step of a recovered saga (its journal may have lost
            # records: a lost -wal, a restored backup).
            tries = iter([run.fresh and step.name not in run.last])
            self.journal.append(sid, "step_started", step=step.name, attempt=attempt)
            run.last[step.name] = "step_started"
            log.info("step {} ({}) attempt {}", step.name, step.kind, attempt)
            try:
                facts = self.retrying(
                    lambda: step.run(run.ctx, untouched=next(tries, False)), log)
            except ZfsError as exc:
                error = f"{step.name}: {type(exc).__name__}: {exc}"
                self.journal.append(sid, "step_failed", step=step.name, attempt=attempt,
                                    error=error, data={"error": type(exc).__name__,
                                                       "message": str(exc)})
                run.last[step.name] = "step_failed"
                log.error("step failed: {}", error)
                return self._after_failure(run, error)
            run.ctx.facts[step.name] = facts
            self.journal.append(sid, "step_done", step=step.name, attempt=attempt, data=facts)
            run.last[step.name] = "step_done"
            if run.read is not None and step.name == run.read_after:
                error = self._read(run, log)
                if error is not None:
                    return self._after_failure(run, error)
        self.journal.append(sid, "saga_succeeded", status=next_status("running", "finish"))
        self.log(run.row).info("saga succeeded")
        return Outcome(sid, "succeeded", None, run.ctx.facts)

    @staticmethod
    def _read(run: Progress, log: Any) -> str | None:
        """The caller's read, once (the saga's error when it fails: the caller keeps its own
        exception, and the saga undoes what the read needed). Whatever the read raises is its
        failure: no step follows a read that did not answer."""
        read, run.read = run.read, None
        log.info("the caller reads after {}", run.read_after)
        try:
            read(run.ctx.facts)
        except Exception as exc:  # noqa: BLE001 (any failure: the read did not answer)
            log.error("the caller's read failed: {}: {}", type(exc).__name__, exc)
            return f"the read after {run.read_after}: {type(exc).__name__}: {exc}"
        return None

    def _after_failure(self, run: Progress, error: str) -> Outcome:
        if not run.abortable():
            parked = self.park(run.row.id, "running", f"failed after the pivot: {error}")
            parked.facts, parked.effect_taken = run.ctx.facts, run.effect_taken()
            return parked
        status = next_status(run.row.status, "compensate", abortable=True)
        self.journal.append(run.row.id, "saga_compensating", status=status, error=error)
        run.row.status = status
        return self._backward(run)

    def _backward(self, run: Progress) -> Outcome:
        sid = run.row.id
        for step in reversed(run.steps):
            last = run.last.get(step.name)
            if last is None or last == "comp_done":
                continue
            log = self.log(run.row, step.name)
            if step.kind != "compensatable":
                return self.park(sid, "compensating", f"{step.name} is forward-only")
            self.journal.append(sid, "comp_started", step=step.name)
            run.last[step.name] = "comp_started"
            log.info("compensating {}", step.name)
            try:
                self.retrying(lambda: compensate(step, run.ctx), log)
            except ZfsError as exc:
                error = f"compensation of {step.name}: {type(exc).__name__}: {exc}"
                self.journal.append(sid, "comp_failed", step=step.name, error=error,
                                    data={"error": type(exc).__name__, "message": str(exc)})
                return self.park(sid, "compensating", error)
            self.journal.append(sid, "comp_done", step=step.name)
            run.last[step.name] = "comp_done"
        self.journal.append(sid, "saga_compensated",
                            status=next_status("compensating", "compensated"))
        self.log(run.row).info("saga compensated: nothing of it is left")
        row = self.row(sid)
        return Outcome(sid, "compensated", row.last_error, run.ctx.facts)

    def park(self, saga_id: str, direction: str, reason: str) -> Outcome:
        """Mark the saga stuck for an operator, noting which way it was going."""
        row = self.row(saga_id)
        status = next_status(row.status, "park")
        self.journal.append(saga_id, "saga_stuck", status=status, error=reason,
                            data={"reason": reason, "direction": direction})
        self.log(row).error("saga parked as stuck: {}", reason)
        return Outcome(saga_id, "stuck", reason)

    @staticmethod
    def _failed_permanently(run: Progress) -> str | None:
        """The saga's last word was a step failure: the process died before acting on it (an
        operator's resume, recorded after it, retries the step instead)."""
        if run.final_event == "step_failed":
            return run.row.last_error or "a step failed"
        return None

    def sr_moved(self, row: SagaRow) -> str | None:
        """Why the saga's SR is not where its plan says (renamed, replaced), or None. Every
        name in a plan is relative to that SR: acting on a stale one could hit another."""
        from zfsaga.steps.base import guid_of

        sr, guid = row.params.get("sr"), row.params.get("sr_guid")
        if not sr or not guid:
            return None
        try:
            found = guid_of(self.zfs, sr)
        except ZfsError as exc:
            return f"cannot check the SR {sr}: {exc}"
        if found != guid:
            return (f"the SR is no longer at {sr} (renamed or replaced): rename it back, "
                    f"then zfsaga resume")
        return None

    # -- what every job reads ------------------------------------------------------------------
    def retrying(self, fn: Callable[[], Any], log: Any) -> Any:
        """A saga's ZFS action (a step, an undo, the witness): `fn`, retried on transient ZFS
        errors (bounded, jittered), each retry logged."""
        def note(exc: BaseException, attempt: int) -> None:
            log.warning("transient error, retrying (attempt {}): {}", attempt, exc)

        with self.zfs.guard.saga_action():  # the only ZFS changes the layer's guard lets by
            return retry_transient(fn, on_retry=note, sleep=self.retry_sleep)

    def load(self, row: SagaRow) -> Progress:
        """Where the saga of `row` stands (sagas/progress.py), on this driver's ZFS."""
        return progress.load(row, self.journal, self.zfs, self.boundary)

    def row(self, saga_id: str) -> SagaRow:
        """The saga's row with its events; SagaNotFound when the journal has none."""
        row = self.journal.get(saga_id)
        if row is None:
            raise SagaNotFound(saga_id)
        return row

    def lock(self, resource: str) -> ResourceLock | NestedLock:
        from zfsaga.sagas.resources import lock_of

        return lock_of(self.state_dir, resource)

    def log(self, row: SagaRow, step: str = "-") -> Any:
        from zfsaga.log import get_logger

        return get_logger(saga_id=row.id, verb=row.kind, step=step)
