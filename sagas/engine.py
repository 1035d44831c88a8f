"""The saga engine's front door: `Engine(...).run(kind, resource, resolve)` starts a verb's
saga and drives it to an end. The engine is split by job, one module each:

    sagas/progress.py   where a saga stands, read from its journal (and `Outcome`)
    sagas/drive.py      the two loops: forward, and compensate backward (`Driver`)
    sagas/witness.py    whether the SR's journal is whole (`JournalLost`)
    sagas/recovery.py   healing at a call's start: orphans, cleanups set aside
    sagas/operator.py   the operator's verbs: resume, abort, abandon, gc, recover, acknowledge
    sagas/forensics.py  what a saga, or a journal's lost sagas, left in ZFS

Starting a saga (`run`), under the resource's lock: refuse a damaged journal, move legacy
keys, heal orphans, finish or refuse a stuck saga on the resource, retry set-aside cleanups,
resolve the plan's inputs, refuse a journal that lost records, record the frozen plan, drive.

`Engine` is a `Driver`; its operator and forensic methods below are thin delegates kept for
the callers that had them (plugin/, tests): new code calls sagas/operator.py."""
from __future__ import annotations

from typing import Any, Callable

from zfsaga.sagas import forensics, operator, recovery
from zfsaga.sagas.contract import Read
from zfsaga.sagas.drive import Driver
from zfsaga.sagas.progress import (FORWARD_ONLY, STEP_EVENTS, Outcome, Progress,  # noqa: F401
                                   SagaNotFound)
from zfsaga.sagas.recovery import CLEANUP_RETRY_S, SagaBlocked, set_aside_key  # noqa: F401
from zfsaga.sagas.witness import UNWITNESSED, JournalLost, witnessed  # noqa: F401
from zfsaga.state.journal import ResourceTaken, SagaRow
from zfsaga.state.locks import NestedLock


class Engine(Driver):
    """Runs the sagas of one journal (an SR's, or the host's) on one ZFS."""

    def run(self, kind: str, resource: str, resolve: Callable[[], dict[str, Any]],
            read: Read | None = None) -> Outcome:
        """Start a new saga on resource and drive it to an end. Under the resource's lock and
        after orphans are healed, `resolve` reads the inputs (names, guids) the plan acts on:
        read earlier, another process's saga could have changed them meanwhile. `read`: the
        caller's read, run after the saga's READ step (sagas/contract.py)."""
        from zfsaga.sagas.catalog import saga_module

        module = saga_module(kind)
        if module is None:
            raise ValueError(f"unknown saga kind {kind!r}")
        with self.lock(resource).acquire(self.lock_wait) as held:
            if held.waited >= 0.05:  # an operator asking why a call was slow sees it here
                from zfsaga.log import get_logger

                get_logger(verb=kind).info("waited {:.2f} s for {} (another saga held it)",
                                           held.waited, resource)
            damage = self.witness.damage()
            if damage is not None:  # before a single record is read from it
                sr = resolve().get("sr")  # reads ZFS only: to name the SR in the message
                raise JournalLost(self.journal, {}, f"it is damaged ({damage})", sr)
            wide = not isinstance(self.lock(resource), NestedLock)
            if wide:
                recovery.rekey_legacy(self, resource)  # to the SR's key: a narrow saga lacks it
            recovery.heal_orphans(self, holding=resource)
            blocking = self.journal.active(resource)
            if blocking and blocking[0].status == "stuck" \
                    and not recovery.finish_cleanup(self, blocking[0], resource):
                raise SagaBlocked(resource, blocking[0])
            if wide:
                recovery.retry_set_aside(self, resource, drain=getattr(module, "DRAINS", False))
            params = resolve()
            covered = witnessed(kind, params)
            if covered:
                self.witness.check_whole(params["sr"])
            if self.journal.created_now and params.get("sr"):
                found = forensics.strangers(self.zfs, self.journal, params["sr"])
                if found:
                    raise JournalLost(self.journal, found, None, params["sr"])
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
            return self.drive_and_checkpoint(saga_id, fresh=True, read=read)

    def recover(self) -> list[Outcome]:
        """Heal every orphaned saga of this journal (lock free, not terminal)."""
        return recovery.recover(self)

    # -- the old names: thin delegates (sagas/operator.py, witness.py, forensics.py) -----------
    def resume(self, saga_id: str, reason: str) -> Outcome:
        return operator.resume(self, saga_id, reason)

    def abort(self, saga_id: str, reason: str) -> Outcome:
        return operator.abort(self, saga_id, reason)

    def abandon(self, saga_id: str, reason: str) -> tuple[Outcome, list[str]]:
        return operator.abandon(self, saga_id, reason)

    def acknowledge(self, sr: str, reason: str = "journal loss acknowledged") -> dict[str, str]:
        return operator.acknowledge(self, sr, reason)

    def journal_loss(self, sr: str) -> str | None:
        return self.witness.loss(sr)

    def check_whole(self, sr: str) -> None:
        self.witness.check_whole(sr)

    def strangers(self, sr: str) -> dict[str, str]:
        return forensics.strangers(self.zfs, self.journal, sr)

    def tagged_by(self, row: SagaRow) -> list[str]:
        return forensics.tagged_by(self.zfs, row)

    def left_behind(self, row: SagaRow) -> list[str]:
        return operator.left_behind(self, row)

    def _rekey_legacy(self, key: str) -> None:
        recovery.rekey_legacy(self, key)
