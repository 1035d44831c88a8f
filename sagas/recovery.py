"""Healing at a call's start: what earlier processes left unfinished is dealt with before a
new saga runs, under the locks the new saga would need anyway.

- An orphan (active saga, lock free) is resumed in its direction, with attempts counted; past
  max_auto, or with a plan this code does not know, it is parked for an operator.
- A saga stuck after its effect took place (only its cleanup failed) is retried by the next
  saga of its resource, and set aside under the SR's key when it fails again, so it blocks
  nothing; set-aside cleanups are retried at most once a minute, and all of them before the
  SR is destroyed.
- Sagas of journals written before SRs were keyed by guid move to the SR's key.

Each function takes the `Driver` (sagas/drive.py) whose loops it drives the sagas with."""
from __future__ import annotations

import os
import time

from zfsaga.sagas.drive import Driver
from zfsaga.sagas.progress import Outcome, parked_direction, plan_known
from zfsaga.state.journal import SagaRow
from zfsaga.state.lifecycle import next_status
from zfsaga.state.locks import NestedLock

#: How often a saga of an SR retries a cleanup set aside from it (seconds).
CLEANUP_RETRY_S = 60.0


class SagaBlocked(RuntimeError):
    """The resource is blocked by a stuck saga: an operator must resume, abort or abandon it."""

    def __init__(self, resource: str, saga: SagaRow) -> None:
        super().__init__(f"{resource} is blocked by stuck saga {saga.id} ({saga.kind}): "
                         f"{saga.last_error or 'see zfsaga show ' + saga.id}")
        self.saga = saga


def set_aside_key(resource: str, saga_id: str) -> str:
    """The resource a saga stuck in its cleanup moves to, so it no longer blocks `resource`:
    under the SR's key (a narrow lock beneath the SR's), listed and resumed as any other."""
    return f"{resource}/cleanup-{saga_id}"


def recover(driver: Driver) -> list[Outcome]:
    """Heal every orphaned saga of the journal (lock free, not terminal), then checkpoint."""
    try:
        return heal_orphans(driver, holding=None)
    finally:
        driver.journal.checkpoint()


def heal_orphans(driver: Driver, holding: str | None) -> list[Outcome]:
    """Drive every orphan this process can lock: its own resource's (`holding`, whose lock it
    holds), and any other whose lock is free. A stuck saga waits for an operator."""
    outcomes = []
    for row in driver.journal.active():
        if row.status == "stuck":
            continue  # waits for an operator; it blocks its own resource only
        if row.resource == holding or (holding and isinstance(driver.lock(row.resource),
                                                              NestedLock)
                                       and row.resource.startswith(holding + "/")):
            # Ours, or a narrow saga of the SR whose lock we hold exclusive: no narrow
            # saga of it can be running (each holds the SR's lock shared).
            outcomes.append(recover_one(driver, row))
            continue
        lock = driver.lock(row.resource)
        if not lock.try_acquire():
            continue  # alive in another process
        with lock:
            fresh = driver.journal.get(row.id)
            if fresh is not None and not fresh.terminal and fresh.status != "stuck":
                outcomes.append(recover_one(driver, fresh))
    return outcomes


def recover_one(driver: Driver, row: SagaRow) -> Outcome:
    """Resume one orphan in its direction, or park it (crashed too often, plan unknown)."""
    driver.witness.check_saga(row)  # an orphan of a journal that lost records is not driven
    log = driver.log(row)
    driver.journal.append(row.id, "recovery_started", count_attempt=True, claim=True,
                          data={"pid": os.getpid()})
    if row.attempts + 1 > driver.max_auto + 1:
        return driver.park(row.id, row.status,
                           f"crashed {row.attempts} times: parked for an operator")
    if not plan_known(row):
        return driver.park(row.id, row.status, "recorded plan unknown to this zfsaga")
    log.warning("recovering orphaned saga (status {}, attempt {})", row.status,
                row.attempts + 1)
    return driver.drive(row.id)


def finish_cleanup(driver: Driver, row: SagaRow, resource: str) -> bool:
    """For the next saga of `resource` (whose lock is held), a saga stuck there after its
    effect took place (its verb answered success): retry its cleanup, as an operator's
    resume would. True when the resource is free: the cleanup finished, or it failed again
    and the saga was set aside (`set_aside_key`). A saga stuck before its effect, or before
    its pivot, or backward, waits for an operator: False."""
    row = driver.row(row.id)  # with its events
    if parked_direction(row) != "running" or not plan_known(row):
        return False
    run = driver.load(row)
    if not run.effect_taken() or not run.pivots_done():
        return False
    if retry_cleanup(driver, row):
        return True
    return driver.journal.rekey(row.id, set_aside_key(resource, row.id))


def retry_cleanup(driver: Driver, row: SagaRow) -> bool:
    """Resume a saga stuck in its cleanup, on behalf of the next saga; True if it finished."""
    driver.journal.append(row.id, "operator_resume", actor=driver.actor or "zfsaga",
                          status=next_status("stuck", "resume", abortable=False),
                          data={"reason": "cleanup retried by the next saga of "
                                          + row.resource}, claim=True)
    return driver.drive(row.id).status == "succeeded"


def retry_set_aside(driver: Driver, resource: str, drain: bool = False) -> None:
    """Retry the cleanups set aside from `resource` (a thick revert's reserve that found
    the pool full: once space is back, the next saga of the SR reserves it), at most once
    a minute each, so a pool that stays full does not grow the journal by every call.
    Only a saga holding the SR's lock exclusive does it (the set-aside saga's own lock is
    a narrow one under it). `drain`: the saga ends the SR (SR.destroy), so each is
    retried now and one that stays unfinished blocks it: what the cleanup still holds (a
    hold, a retired head) would outlive the SR, out of every operator's reach."""
    prefix = set_aside_key(resource, "")
    for row in driver.journal.active():
        if row.resource.startswith(prefix) and row.status == "stuck" \
                and (drain or time.time() - row.updated >= CLEANUP_RETRY_S):
            retry_cleanup(driver, driver.row(row.id))
    if drain:
        left = [r for r in driver.journal.active() if r.resource.startswith(prefix)]
        if left:
            raise SagaBlocked(resource, left[0])


def rekey_legacy(driver: Driver, key: str) -> None:
    """Journals written before SRs were keyed by guid name the SR as it was typed; this
    journal is that SR's alone, so its active sagas move to the SR's key, each under the
    lock of its old name (a process of the old version may still be driving it: then it
    is left for later)."""
    from zfsaga.steps.srs import SR_KEY_PREFIX

    for row in driver.journal.legacy_active(SR_KEY_PREFIX):
        lock = driver.lock(row.resource)
        if lock.try_acquire():
            with lock:
                driver.journal.rekey(row.id, key)
