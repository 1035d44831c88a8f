"""The saga engine: runs a frozen plan of steps forward, or compensates it backward, writing
every intent to the journal before the ZFS call and every completion after the probe confirms
it. Recovery, operator resume/abort/abandon and fresh runs all go through the same two loops.

Rules (docs/saga-design.md, kept or sharpened):
- A step is retried only for transient ZFS errors (tenacity, bounded, jittered), and the whole
  step is retried (probe + act), so an act that failed after taking effect is seen as done.
- A permanent failure before any forward-only step has started compensates; after, it parks the
  saga as stuck (forward failed, and backward would need an undo that does not exist).
- Compensation runs in reverse plan order over every step with any event, not only finished
  ones; a failing compensation parks the saga and stops (ZFS dependencies make order matter).
- An orphan (active saga, lock free) is resumed in its direction, with attempts counted; past
  max_auto, or with a plan this code does not know, it is parked for an operator.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from zfsaga.state.journal import Journal, ResourceTaken, SagaRow
from zfsaga.state.lifecycle import IllegalMove, next_status
from zfsaga.state.locks import NestedLock, ResourceLock, lock_for
from zfsaga.steps.base import OWNER, Step, StepContext
from zfsaga.steps.catalog import UnknownPlan, rebuild
from zfsaga.steps.zfs.errors import ZfsError
from zfsaga.steps.zfs.retry import retry_transient
from zfsaga.steps.zfs.interface import Zfs

STEP_EVENTS = ("step_started", "step_done", "step_failed", "comp_started", "comp_done",
               "comp_failed")
FORWARD_ONLY = ("pivot", "retriable")


class SagaBlocked(RuntimeError):
    """The resource is blocked by a stuck saga: an operator must resume, abort or abandon it."""

    def __init__(self, resource: str, saga: SagaRow) -> None:
        super().__init__(f"{resource} is blocked by stuck saga {saga.id} ({saga.kind}): "
                         f"{saga.last_error or 'see zfsaga show ' + saga.id}")
        self.saga = saga


class SagaNotFound(LookupError):
    pass


class JournalLost(RuntimeError):
    """The SR's journal has lost records: it is behind the SR's witness (deleted, its -wal
    lost, cut or damaged), or its pages are damaged, or it is new while the SR's datasets carry
    tags of sagas it does not know. Every mutating call is refused until an operator
    acknowledges the loss (`zfsaga recover --yes`): starting afresh would forget what those
    sagas left behind (a hold, a dataset renamed aside)."""

    def __init__(self, journal: Journal, strangers: dict[str, str], detail: str | None = None,
                 sr: str | None = None) -> None:
        shown = ", ".join(f"{name} (saga {sid})" for name, sid in list(strangers.items())[:5])
        where = f"--sr {sr} " if sr else ""
        super().__init__(
            f"journal {journal.path} has lost records: "
            + (detail or "it is new") + ". "
            + (f"{len(strangers)} dataset(s) carry tags of sagas it does not know: {shown}. "
               if strangers else "")
            + f"Nothing was done. Restore the journal from a backup; or run `zfsaga {where}"
              f"recover` to list what its lost sagas left (datasets, snapshots, holds: check "
              f"each, one may be a VDI's current head, never destroy it blindly), then "
              f"`zfsaga {where}recover --yes --reason ...` to acknowledge the loss and let "
              f"sagas run again")
        self.strangers = strangers
        self.detail = detail


#: How often a saga of an SR retries a cleanup set aside from it (seconds).
CLEANUP_RETRY_S = 60.0


def set_aside_key(resource: str, saga_id: str) -> str:
    """The resource a saga stuck in its cleanup moves to, so it no longer blocks `resource`:
    under the SR's key (a narrow lock beneath the SR's), listed and resumed as any other."""
    return f"{resource}/cleanup-{saga_id}"


#: Sagas that do not write the witness: SR.create takes on a dataset that is not an SR yet
#: (a compensated create must leave it as it was), and its journal is born with it.
UNWITNESSED = ("sr.create",)


def witnessed(kind: str, params: dict[str, Any]) -> bool:
    """Whether a saga of `kind` with `params` is covered by its SR's journal witness: it acts
    on an SR (pool sagas journal on the host), and is not SR.create."""
    return bool(params.get("sr")) and kind not in UNWITNESSED


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
class _Run:
    """One saga being driven: its row, rebuilt steps, context and last event per step."""

    row: SagaRow
    steps: list[Step]
    ctx: StepContext
    last: dict[str, str]
    attempts: dict[str, int]
    final_event: str = ""
    fresh: bool = False

    def abortable(self) -> bool:
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


class Engine:
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
        self._sound: set[str] = set()  # SRs whose journal this process found whole
        self._pages_ok = False  # the journal's pages passed SQLite's quick check

    # -- entry points --------------------------------------------------------------------------
    def run(self, kind: str, resource: str,
            resolve: Callable[[], dict[str, Any]]) -> Outcome:
        """Start a new saga on resource and drive it to an end. Under the resource's lock and
        after orphans are healed, `resolve` reads the inputs (names, guids) the plan acts on:
        read earlier, another process's saga could have changed them meanwhile."""
        from zfsaga.sagas.catalog import saga_module

        module = saga_module(kind)
        if module is None:
            raise ValueError(f"unknown saga kind {kind!r}")
        with self._lock(resource).acquire(self.lock_wait):
            damage = self._damage()
            if damage is not None:  # before a single record is read from it
                sr = resolve().get("sr")  # reads ZFS only: to name the SR in the message
                raise JournalLost(self.journal, {}, f"it is damaged ({damage})", sr)
            if not isinstance(self._lock(resource), NestedLock):
                self._rekey_legacy(resource)  # to the SR's key, which a narrow saga lacks
            self._recover_all(holding=resource)
            blocking = self.journal.active(resource)
            if blocking and blocking[0].status == "stuck" \
                    and not self._finish_cleanup(blocking[0], resource):
                raise SagaBlocked(resource, blocking[0])
            if not isinstance(self._lock(resource), NestedLock):
                self._retry_set_aside(resource, drain=getattr(module, "DRAINS", False))
            params = resolve()
            covered = witnessed(kind, params)
            if covered:
                self.check_whole(params["sr"])
            if self.journal.created_now and params.get("sr"):
                strangers = self.strangers(params["sr"])
                if strangers:
                    raise JournalLost(self.journal, strangers, None, params["sr"])
                self.journal.created_now = False
            plan = module.plan(params)
            version = module.VERSION
            try:
                saga_id = self.journal.create_saga(kind, version, resource,
                                                   [s.describe() for s in plan], params,
                                                   witnessed=covered)
            except ResourceTaken as exc:
                if exc.saga.status == "stuck":
                    raise SagaBlocked(resource, exc.saga) from None
                raise
            return self._drive_and_checkpoint(saga_id, fresh=True)

    # -- the journal's witness -----------------------------------------------------------------
    def journal_loss(self, sr: str) -> str | None:
        """Why the journal cannot be trusted for this SR, or None: its pages are damaged, or
        its newest generation is behind the SR's witness. The witness is read first: every
        value it can hold was committed to the journal before it was written, so a saga of
        another process landing between the two reads cannot look like a loss."""
        from zfsaga.steps import srs

        mark = srs.journal_generation(self.zfs, sr)
        damage = self._damage()
        if damage is not None:
            return f"it is damaged ({damage})"
        gen = self.journal.generation()
        if gen < mark:
            return (f"its newest saga generation is {gen}, but the SR {sr} carries "
                    f"{srs.JOURNAL_GEN}={mark}: the records of at least {mark - gen} saga(s) "
                    f"are gone (the journal deleted or replaced, its -wal lost, cut or "
                    f"damaged)")
        return None

    def _damage(self) -> str | None:
        if self._pages_ok:
            return None
        damage = self.journal.damage()
        self._pages_ok = damage is None
        return damage

    def check_whole(self, sr: str) -> None:
        """Refuse (JournalLost) to act on an SR whose journal lost records; once per process."""
        if sr in self._sound:
            return
        detail = self.journal_loss(sr)
        if detail is not None:
            try:
                strangers = self.strangers(sr)
            except Exception:  # a damaged journal may not answer: the loss is reported anyway
                strangers = {}
            raise JournalLost(self.journal, strangers, detail, sr)
        self._sound.add(sr)

    def _advance_witness(self, run: "_Run") -> str | None:
        """Set the SR's witness to the saga's generation, before its first step; the error
        that stops the saga (compensated: nothing of it was done), or None."""
        from zfsaga.steps import srs

        gen = self.journal.generation_of(run.row.id)
        sr = run.row.params.get("sr")
        if gen is None or not sr:
            return None
        try:
            self._retrying(lambda: srs.advance_journal_generation(self.zfs, sr, gen),
                           self._log(run.row))
        except ZfsError as exc:
            return f"journal witness: {type(exc).__name__}: {exc}"
        return None

    def _drive_and_checkpoint(self, saga_id: str, fresh: bool = False) -> Outcome:
        """Drive a saga a verb or an operator asked for, then checkpoint the WAL into the main
        file, whatever the end: `journal.db` itself holds what was committed."""
        try:
            return self._drive(saga_id, fresh=fresh)
        finally:
            self.journal.checkpoint()

    def _finish_cleanup(self, row: SagaRow, resource: str) -> bool:
        """For the next saga of `resource` (whose lock is held), a saga stuck there after its
        effect took place (its verb answered success): retry its cleanup, as an operator's
        resume would. True when the resource is free: the cleanup finished, or it failed again
        and the saga was set aside (`set_aside_key`). A saga stuck before its effect, or before
        its pivot, or backward, waits for an operator: False."""
        row = self._row(row.id)  # with its events
        if self._parked_direction(row) != "running" or not self._plan_known(row):
            return False
        run = self._load(row)
        if not run.effect_taken() or not run.pivots_done():
            return False
        if self._retry(row):
            return True
        return self.journal.rekey(row.id, set_aside_key(resource, row.id))

    def _retry(self, row: SagaRow) -> bool:
        self.journal.append(row.id, "operator_resume", actor=self.actor or "zfsaga",
                            status=next_status("stuck", "resume", abortable=False),
                            data={"reason": "cleanup retried by the next saga of "
                                            + row.resource}, claim=True)
        return self._drive(row.id).status == "succeeded"

    def _retry_set_aside(self, resource: str, drain: bool = False) -> None:
        """Retry the cleanups set aside from `resource` (a thick revert's reserve that found
        the pool full: once space is back, the next saga of the SR reserves it), at most once
        a minute each, so a pool that stays full does not grow the journal by every call.
        Only a saga holding the SR's lock exclusive does it (the set-aside saga's own lock is
        a narrow one under it). `drain`: the saga ends the SR (SR.destroy), so each is
        retried now and one that stays unfinished blocks it: what the cleanup still holds (a
        hold, a retired head) would outlive the SR, out of every operator's reach."""
        import time

        prefix = set_aside_key(resource, "")
        for row in self.journal.active():
            if row.resource.startswith(prefix) and row.status == "stuck" \
                    and (drain or time.time() - row.updated >= CLEANUP_RETRY_S):
                self._retry(self._row(row.id))
        if drain:
            left = [r for r in self.journal.active() if r.resource.startswith(prefix)]
            if left:
                raise SagaBlocked(resource, left[0])

    def _rekey_legacy(self, key: str) -> None:
        """Journals written before SRs were keyed by guid name the SR as it was typed; this
        journal is that SR's alone, so its active sagas move to the SR's key, each under the
        lock of its old name (a process of the old version may still be driving it: then it
        is left for later)."""
        for row in self.journal.legacy_active():
            lock = self._lock(row.resource)
            if lock.try_acquire():
                with lock:
                    self.journal.rekey(row.id, key)

    def recover(self) -> list[Outcome]:
        """Heal every orphaned saga of this SR (lock free, not terminal)."""
        try:
            return self._recover_all(holding=None)
        finally:
            self.journal.checkpoint()

    def _check_row(self, row: SagaRow) -> None:
        """An operator's resume or abort acts on ZFS: refused, as a verb is, on a journal that
        lost records (the saga's own record may be one cut short)."""
        from zfsaga.steps.zfs.errors import NotFound

        if witnessed(row.kind, row.params):
            try:
                self.check_whole(row.params["sr"])
            except NotFound:
                pass  # the SR moved: _drive parks the saga and says so (_sr_moved)

    def resume(self, saga_id: str, reason: str) -> Outcome:
        """Operator: continue a stuck or orphaned saga in its direction."""
        row = self._row(saga_id)
        self._check_row(row)
        with self._lock(row.resource).acquire(self.lock_wait):
            row = self._row(saga_id)
            if row.status == "stuck":
                direction = self._parked_direction(row)
                trigger = "resume" if direction != "compensating" else "resume_compensating"
                status = next_status("stuck", trigger, plan_known=self._plan_known(row),
                                     abortable=self._load(row).abortable()
                                     if self._plan_known(row) else True)
                self.journal.append(saga_id, "operator_resume", status=status, actor=self.actor,
                                    data={"reason": reason}, claim=True)
            elif row.terminal:
                raise IllegalMove(f"saga {saga_id} is {row.status}: nothing to resume")
            else:
                self.journal.append(saga_id, "operator_resume", actor=self.actor,
                                    data={"reason": reason}, claim=True)
            return self._drive_and_checkpoint(saga_id)

    def abort(self, saga_id: str, reason: str) -> Outcome:
        """Operator: undo a saga that has not reached its pivot."""
        row = self._row(saga_id)
        self._check_row(row)
        with self._lock(row.resource).acquire(self.lock_wait):
            row = self._row(saga_id)
            known = self._plan_known(row)
            abortable = self._load(row).abortable() if known else False
            if row.status == "compensating":
                status = row.status
            else:
                status = next_status(row.status, "abort", abortable=abortable, plan_known=known)
            self.journal.append(saga_id, "operator_abort", status=status, actor=self.actor,
                                data={"reason": reason}, claim=True)
            return self._drive_and_checkpoint(saga_id)

    def abandon(self, saga_id: str, reason: str) -> tuple[Outcome, list[str]]:
        """Operator: close the record without touching ZFS; returns what the saga left tagged."""
        row = self._row(saga_id)
        with self._lock(row.resource).acquire(self.lock_wait):
            row = self._row(saga_id)
            status = next_status(row.status, "abandon")
            left = self.left_behind(row)
            self.journal.append(saga_id, "operator_abandon", status=status, actor=self.actor,
                                data={"reason": reason, "left_behind": left})
            return Outcome(saga_id, status), left

    def tagged_by(self, row: SagaRow) -> list[str]:
        """Datasets and snapshots under the saga's SR that carry its ownership tag."""
        root = row.params.get("sr", row.resource)
        if "pool" in row.params and "sr" not in row.params:
            return []  # a pool saga (host journal): its pool is named in its steps' effects
        return [name for name, props in self.zfs.list_tree(root, [OWNER]).items()
                if (props[OWNER].local or "").startswith(row.id + "/")]

    def left_behind(self, row: SagaRow) -> list[str]:
        """Everything the saga's effects left in ZFS, for an operator closing it by hand: the
        datasets it tagged, and the effect of every step it began that is still in place (a
        hold, a dataset renamed aside, a promote), as each step's probe sees it."""
        left = self.tagged_by(row)
        if not self._plan_known(row):
            return left
        run = self._load(row)
        for step in run.steps:
            if step.name not in run.last or run.last[step.name] == "comp_done":
                continue
            try:
                effect = step.effect(run.ctx)
            except ZfsError as exc:
                effect = f"{step.name}: cannot tell ({type(exc).__name__}: {exc})"
            if effect is not None and effect not in left:
                left.append(effect)
        return left

    def acknowledge(self, sr: str, reason: str = "journal loss acknowledged") -> dict[str, str]:
        """Operator: record the sagas behind `strangers` as known-and-forgotten and bring the
        journal up to the SR's witness, touching no dataset, so a journal that lost records
        stops blocking new sagas."""
        from zfsaga.steps import srs

        found = self.strangers(sr)
        self.journal.forget(sorted(set(found.values())), actor=self.actor)
        mark = srs.journal_generation(self.zfs, sr)
        if self.journal.generation() < mark:
            self.journal.acknowledge_generation(mark, self.actor, reason)
        self._sound.discard(sr)
        return found

    def strangers(self, sr: str) -> dict[str, str]:
        """Datasets under `sr` tagged by a saga this journal has no record of (its journal was
        lost or cut back): dataset -> saga id. Reported, never destroyed by zfsaga on its own:
        one may be a VDI's current head (a revert's clone becomes the VDI)."""
        out = {}
        for name, props in self.zfs.list_tree(sr, [OWNER]).items():
            tag = props[OWNER].local
            if tag and not self.journal.knows(tag.split("/", 1)[0]):
                out[name] = tag.split("/", 1)[0]
        return out

    # -- recovery ------------------------------------------------------------------------------
    def _recover_all(self, holding: str | None) -> list[Outcome]:
        outcomes = []
        for row in self.journal.active():
            if row.status == "stuck":
                continue  # waits for an operator; it blocks its own resource only
            if row.resource == holding or (holding and isinstance(self._lock(row.resource),
                                                                    NestedLock)
                                           and row.resource.startswith(holding + "/")):
                # Ours, or a narrow saga of the SR whose lock we hold exclusive: no narrow
                # saga of it can be running (each holds the SR's lock shared).
                outcomes.append(self._recover_one(row))
                continue
            lock = self._lock(row.resource)
            if not lock.try_acquire():
                continue  # alive in another process
            with lock:
                fresh = self.journal.get(row.id)
                if fresh is not None and not fresh.terminal and fresh.status != "stuck":
                    outcomes.append(self._recover_one(fresh))
        return outcomes

    def _recover_one(self, row: SagaRow) -> Outcome:
        self._check_row(row)  # an orphan of a journal that lost records is not driven blind
        log = self._log(row)
        self.journal.append(row.id, "recovery_started", count_attempt=True, claim=True,
                            data={"pid": os.getpid()})
        if row.attempts + 1 > self.max_auto + 1:
            return self._park(row.id, row.status,
                              f"crashed {row.attempts} times: parked for an operator")
        if not self._plan_known(row):
            return self._park(row.id, row.status, "recorded plan unknown to this zfsaga")
        log.warning("recovering orphaned saga (status {}, attempt {})", row.status,
                    row.attempts + 1)
        return self._drive(row.id)

    # -- the two loops -------------------------------------------------------------------------
    def _drive(self, saga_id: str, fresh: bool = False) -> Outcome:
        """Drive a saga in its direction. `fresh`: created by this process a moment ago,
        under the lock it still holds (its first attempts may skip the probe, and its SR was
        identified just now)."""
        row = self._row(saga_id)
        try:
            run = self._load(row)
        except UnknownPlan as exc:
            return self._park(saga_id, row.status, str(exc))
        run.fresh = fresh
        if not fresh and not row.terminal:
            moved = self._sr_moved(row)
            if moved:
                return self._park(saga_id, self._direction(row), moved)
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

    def _forward(self, run: _Run) -> Outcome:
        sid = run.row.id
        if run.fresh and not run.last:
            error = self._advance_witness(run)
            if error is not None:
                return self._after_failure(run, error)
        for step in run.steps:
            if run.last.get(step.name) == "step_done":
                continue
            log = self._log(run.row, step.name)
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
                facts = self._retrying(
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
        self.journal.append(sid, "saga_succeeded", status=next_status("running", "finish"))
        self._log(run.row).info("saga succeeded")
        return Outcome(sid, "succeeded", None, run.ctx.facts)

    def _after_failure(self, run: _Run, error: str) -> Outcome:
        if not run.abortable():
            parked = self._park(run.row.id, "running", f"failed after the pivot: {error}")
            parked.facts, parked.effect_taken = run.ctx.facts, run.effect_taken()
            return parked
        status = next_status(run.row.status, "compensate", abortable=True)
        self.journal.append(run.row.id, "saga_compensating", status=status, error=error)
        run.row.status = status
        return self._backward(run)

    def _backward(self, run: _Run) -> Outcome:
        sid = run.row.id
        for step in reversed(run.steps):
            last = run.last.get(step.name)
            if last is None or last == "comp_done":
                continue
            log = self._log(run.row, step.name)
            if step.kind != "compensatable":
                return self._park(sid, "compensating", f"{step.name} is forward-only")
            self.journal.append(sid, "comp_started", step=step.name)
            run.last[step.name] = "comp_started"
            log.info("compensating {}", step.name)
            try:
                self._retrying(lambda: step.compensate(run.ctx), log)
            except ZfsError as exc:
                error = f"compensation of {step.name}: {type(exc).__name__}: {exc}"
                self.journal.append(sid, "comp_failed", step=step.name, error=error,
                                    data={"error": type(exc).__name__, "message": str(exc)})
                return self._park(sid, "compensating", error)
            self.journal.append(sid, "comp_done", step=step.name)
            run.last[step.name] = "comp_done"
        self.journal.append(sid, "saga_compensated",
                            status=next_status("compensating", "compensated"))
        self._log(run.row).info("saga compensated: nothing of it is left")
        row = self._row(sid)
        return Outcome(sid, "compensated", row.last_error, run.ctx.facts)

    def _park(self, saga_id: str, direction: str, reason: str) -> Outcome:
        row = self._row(saga_id)
        status = next_status(row.status, "park")
        self.journal.append(saga_id, "saga_stuck", status=status, error=reason,
                            data={"reason": reason, "direction": direction})
        self._log(row).error("saga parked as stuck: {}", reason)
        return Outcome(saga_id, "stuck", reason)

    # -- helpers -------------------------------------------------------------------------------
    def _retrying(self, fn: Callable[[], Any], log: Any) -> Any:
        """Run a saga's ZFS action (a step, an undo, the witness), retried while transient."""
        def note(exc: BaseException, attempt: int) -> None:
            log.warning("transient error, retrying (attempt {}): {}", attempt, exc)

        with self.zfs.guard.saga_action():  # the only ZFS changes the layer's guard lets by
            return retry_transient(fn, on_retry=note, sleep=self.retry_sleep)

    def _load(self, row: SagaRow) -> _Run:
        steps = rebuild(row.plan)
        events = row.events or list(self.journal.events(row.id))
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
        ctx = StepContext(self.zfs, row.id, row.params, facts, self.boundary, cut_off)
        # Recovery bookkeeping does not change what the saga last said about itself.
        said = [ev.type for ev in events if ev.type != "recovery_started"]
        return _Run(row, steps, ctx, last, attempts, said[-1] if said else "")

    def _failed_permanently(self, run: _Run) -> str | None:
        """The saga's last word was a step failure: the process died before acting on it (an
        operator's resume, recorded after it, retries the step instead)."""
        if run.final_event == "step_failed":
            return run.row.last_error or "a step failed"
        return None

    def _plan_known(self, row: SagaRow) -> bool:
        from zfsaga.sagas.catalog import saga_module

        module = saga_module(row.kind)
        if module is None or module.VERSION != row.kind_version:
            return False
        try:
            rebuild(row.plan)
        except UnknownPlan:
            return False
        return True

    def _sr_moved(self, row: SagaRow) -> str | None:
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

    @staticmethod
    def _direction(row: SagaRow) -> str:
        return "compensating" if row.status == "compensating" else "running"

    @staticmethod
    def _parked_direction(row: SagaRow) -> str:
        for ev in reversed(row.events):
            if ev.type == "saga_stuck":
                return ev.data.get("direction", "running")
        return "running"

    def _row(self, saga_id: str) -> SagaRow:
        row = self.journal.get(saga_id)
        if row is None:
            raise SagaNotFound(saga_id)
        return row

    def _lock(self, resource: str) -> ResourceLock | NestedLock:
        return lock_for(self.state_dir, resource)

    def _log(self, row: SagaRow, step: str = "-") -> Any:
        from zfsaga.log import get_logger

        return get_logger(saga_id=row.id, verb=row.kind, step=step)
