"""The operator's verbs on an SR's sagas (the `zfsaga` command, zfsaga/cli.py, calls these and
nothing else of the engine): resume a stuck or orphaned saga in its direction, abort one that
has not reached its pivot, abandon one (close its record, touching nothing), forget finished
ones (gc), heal orphans now (recover), and, after a journal lost records, see what its lost
sagas left and acknowledge the loss. Each takes the `Driver` (an `Engine`) to act with, and
records who acted (its `actor`) and why (`reason`) in the journal.

What a command would do is told before it is done (`refusal`, `preview`): the same rules, so
a dry run and the real run cannot disagree."""
from __future__ import annotations

from zfsaga.sagas import forensics, recovery
from zfsaga.sagas.drive import Driver
from zfsaga.sagas.progress import Outcome, parked_direction, plan_known
from zfsaga.state.journal import Journal, SagaRow
from zfsaga.state.lifecycle import IllegalMove, next_status
from zfsaga.steps.base import Step, StepContext
from zfsaga.steps.zfs.errors import ZfsError
from zfsaga.steps.zfs.interface import Zfs

__all__ = ["abandon", "abort", "acknowledge", "check_abort", "direction", "gc", "journal_loss",
           "left_behind", "left_by_lost_sagas", "plan_known", "preview", "recover", "resume",
           "strangers"]


# -- acting on one saga ------------------------------------------------------------------------
def resume(driver: Driver, saga_id: str, reason: str) -> Outcome:
    """Continue a stuck or orphaned saga in its direction."""
    row = driver.row(saga_id)
    driver.witness.check_saga(row)
    with driver.lock(row.resource).acquire(driver.lock_wait):
        row = driver.row(saga_id)
        if row.status == "stuck":
            way = parked_direction(row)
            trigger = "resume" if way != "compensating" else "resume_compensating"
            known = plan_known(row)
            status = next_status("stuck", trigger, plan_known=known,
                                 abortable=driver.load(row).abortable() if known else True)
            driver.journal.append(saga_id, "operator_resume", status=status,
                                  actor=driver.actor, data={"reason": reason}, claim=True)
        elif row.terminal:
            raise IllegalMove(f"saga {saga_id} is {row.status}: nothing to resume")
        else:
            driver.journal.append(saga_id, "operator_resume", actor=driver.actor,
                                  data={"reason": reason}, claim=True)
        return driver.drive_and_checkpoint(saga_id)


def abort(driver: Driver, saga_id: str, reason: str) -> Outcome:
    """Undo a saga that has not reached its pivot."""
    row = driver.row(saga_id)
    driver.witness.check_saga(row)
    with driver.lock(row.resource).acquire(driver.lock_wait):
        row = driver.row(saga_id)
        known = plan_known(row)
        abortable = driver.load(row).abortable() if known else False
        if row.status == "compensating":
            status = row.status
        else:
            status = next_status(row.status, "abort", abortable=abortable, plan_known=known)
        driver.journal.append(saga_id, "operator_abort", status=status, actor=driver.actor,
                              data={"reason": reason}, claim=True)
        return driver.drive_and_checkpoint(saga_id)


def abandon(driver: Driver, saga_id: str, reason: str) -> tuple[Outcome, list[str]]:
    """Close the record without touching ZFS; returns what the saga left behind."""
    row = driver.row(saga_id)
    with driver.lock(row.resource).acquire(driver.lock_wait):
        row = driver.row(saga_id)
        status = next_status(row.status, "abandon")
        left = left_behind(driver, row)
        driver.journal.append(saga_id, "operator_abandon", status=status, actor=driver.actor,
                              data={"reason": reason, "left_behind": left})
        return Outcome(saga_id, status), left


# -- what a command would do -------------------------------------------------------------------
def direction(row: SagaRow) -> str:
    """Which way a resume drives the saga: "forward" or "backward" (a stuck saga goes the way
    it was going when it was parked)."""
    status = parked_direction(row) if row.status == "stuck" else row.status
    return "backward" if status == "compensating" else "forward"


def check_abort(driver: Driver, row: SagaRow) -> None:
    """IllegalMove when the saga cannot be aborted (a forward-only step has begun)."""
    if row.status != "compensating":
        next_status(row.status, "abort", abortable=driver.load(row).abortable())


def preview(driver: Driver, row: SagaRow, way: str) -> list[str]:
    """What driving the saga `way` ("forward", "backward" or "abandon") would do, by the
    saga's own state: probes for a forward run, the compensations for a backward one, the
    leftovers for an abandon. Touches nothing."""
    if way == "abandon":
        left = left_behind(driver, row)
        return [f"would close saga {row.id} ({row.status}) as abandoned, touching nothing; "
                f"left behind: {', '.join(left) or 'nothing'}"]
    run = driver.load(row)
    lines = []
    if way == "forward":
        for step in run.steps:
            if run.last.get(step.name) != "step_done":
                waits = _facts_not_known(step, run.ctx)
                if waits:  # its probe reads them: nothing to ask ZFS before they exist
                    lines.append(f"would run {step.name} ({step.kind}): after "
                                 f"{'; '.join(waits)}")
                    continue
                try:
                    said = step.probe(run.ctx)
                except ZfsError as exc:
                    said = f"cannot tell ({type(exc).__name__}: {exc})"
                lines.append(f"would run {step.name} ({step.kind}): probe says {said}")
    else:
        for step in reversed(run.steps):
            if run.last.get(step.name) not in (None, "comp_done"):
                lines.append(f"would compensate {step.name}")
    return lines


def _facts_not_known(step: Step, ctx: StepContext) -> list[str]:
    """The facts `step` reads (`@step.fact`) of steps that have not reported them yet, each
    as "<step>, whose <fact> it reads"."""
    out = []
    for ref in step.args.values():
        if isinstance(ref, str) and ref.startswith("@"):
            of, _, fact = ref[1:].partition(".")
            if fact not in ctx.facts.get(of, {}):
                out.append(f"{of}, whose {fact} it reads")
    return out


# -- the journal as a whole --------------------------------------------------------------------
def gc(journal: Journal, older_than_s: float, dry_run: bool = False) -> list[str]:
    """Forget finished sagas older than `older_than_s` seconds; the ids forgotten (or that
    would be, with `dry_run`)."""
    return journal.gc(older_than_s, dry_run=dry_run)


def recover(driver: Driver) -> list[Outcome]:
    """Heal the journal's orphaned sagas now (sagas/recovery.py), as a verb's start would."""
    return recovery.recover(driver)


def journal_loss(driver: Driver, sr: str) -> str | None:
    """Why the SR's journal cannot be trusted, or None (sagas/witness.py)."""
    return driver.witness.loss(sr)


def strangers(driver: Driver, sr: str) -> dict[str, str]:
    """Datasets under `sr` tagged by sagas the journal has no record of: name -> saga id."""
    return forensics.strangers(driver.zfs, driver.journal, sr)


def left_behind(driver: Driver, row: SagaRow) -> list[str]:
    """What the saga's effects left in ZFS (sagas/forensics.py)."""
    return forensics.left_behind(driver.zfs, driver.journal, row, driver.boundary)


def left_by_lost_sagas(zfs: Zfs, sr: str,
                       journal: Journal | None) -> tuple[dict[str, str], list[str]]:
    """The tags and holds under the SR of sagas the journal (None: no journal to ask) does not
    know (sagas/forensics.py)."""
    return forensics.left_by_lost_sagas(zfs, sr, journal)


def acknowledge(driver: Driver, sr: str,
                reason: str = "journal loss acknowledged") -> dict[str, str]:
    """Record the sagas behind `strangers` as known-and-forgotten and bring the journal up to
    the SR's witness, touching no dataset, so a journal that lost records stops blocking new
    sagas. Returns the strangers it forgot."""
    from zfsaga.steps import srs

    found = strangers(driver, sr)
    driver.journal.forget(sorted(set(found.values())), actor=driver.actor)
    mark = srs.journal_generation(driver.zfs, sr)
    if driver.journal.generation() < mark:
        driver.journal.acknowledge_generation(mark, driver.actor, reason)
    driver.witness.forget(sr)
    return found
