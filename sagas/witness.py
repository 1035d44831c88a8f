"""Whether an SR's journal is whole. The SR carries a witness, the journal generation of its
newest saga (steps/srs.py JOURNAL_GEN), advanced before that saga's first step: a journal
whose newest generation is behind it has lost records (deleted, its -wal lost, cut or
damaged), and so has one whose pages are damaged. Every saga that would act on such an SR is
refused (`JournalLost`) until an operator acknowledges the loss (sagas/operator.py): driving
it blind would forget what the lost sagas left behind (a hold, a dataset renamed aside)."""
from __future__ import annotations

from typing import Any, Callable

from zfsaga.sagas import forensics
from zfsaga.state.journal import Journal, SagaRow
from zfsaga.steps.zfs.errors import NotFound, ZfsError
from zfsaga.steps.zfs.interface import Zfs

#: Sagas that do not write the witness: SR.create takes on a dataset that is not an SR yet
#: (a compensated create must leave it as it was), and its journal is born with it.
UNWITNESSED = ("sr.create",)


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


def witnessed(kind: str, params: dict[str, Any]) -> bool:
    """Whether a saga of `kind` with `params` is covered by its SR's journal witness: it acts
    on an SR (pool sagas journal on the host), and is not SR.create."""
    return bool(params.get("sr")) and kind not in UNWITNESSED


class Witness:
    """One process's view of whether its journal is whole: each SR is checked once, and the
    journal's pages once, then trusted for the rest of the call."""

    def __init__(self, zfs: Zfs, journal: Journal) -> None:
        self.zfs = zfs
        self.journal = journal
        self._sound: set[str] = set()  # SRs whose journal this process found whole
        self._pages_ok = False  # the journal's pages passed SQLite's quick check

    def damage(self) -> str | None:
        """What is wrong with the journal's pages, or None (asked of SQLite once)."""
        if self._pages_ok:
            return None
        damage = self.journal.damage()
        self._pages_ok = damage is None
        return damage

    def loss(self, sr: str) -> str | None:
        """Why the journal cannot be trusted for this SR, or None: its pages are damaged, or
        its newest generation is behind the SR's witness. The witness is read first: every
        value it can hold was committed to the journal before it was written, so a saga of
        another process landing between the two reads cannot look like a loss."""
        from zfsaga.steps import srs

        mark = srs.journal_generation(self.zfs, sr)
        damage = self.damage()
        if damage is not None:
            return f"it is damaged ({damage})"
        gen = self.journal.generation()
        if gen < mark:
            return (f"its newest saga generation is {gen}, but the SR {sr} carries "
                    f"{srs.JOURNAL_GEN}={mark}: the records of at least {mark - gen} saga(s) "
                    f"are gone (the journal deleted or replaced, its -wal lost, cut or "
                    f"damaged)")
        return None

    def check_whole(self, sr: str) -> None:
        """Refuse (JournalLost) to act on an SR whose journal lost records; once per process."""
        if sr in self._sound:
            return
        detail = self.loss(sr)
        if detail is not None:
            try:
                strangers = forensics.strangers(self.zfs, self.journal, sr)
            except Exception:  # a damaged journal may not answer: the loss is reported anyway
                strangers = {}
            raise JournalLost(self.journal, strangers, detail, sr)
        self._sound.add(sr)

    def check_saga(self, row: SagaRow) -> None:
        """Before a saga already recorded is driven (an orphan, an operator's resume or abort):
        refused, as a verb is, on a journal that lost records (the saga's own record may be one
        cut short)."""
        if witnessed(row.kind, row.params):
            try:
                self.check_whole(row.params["sr"])
            except NotFound:
                pass  # the SR moved: the drive parks the saga and says so (drive.sr_moved)

    def forget(self, sr: str) -> None:
        """The loss was acknowledged: the SR is checked afresh by its next saga."""
        self._sound.discard(sr)

    def advance(self, row: SagaRow, retrying: Callable[[Callable[[], Any]], Any]) -> str | None:
        """Set the SR's witness to the saga's generation, before its first step; the error
        that stops the saga (compensated: nothing of it was done), or None."""
        from zfsaga.steps import srs

        gen = self.journal.generation_of(row.id)
        sr = row.params.get("sr")
        if gen is None or not sr:
            return None
        try:
            retrying(lambda: srs.advance_journal_generation(self.zfs, sr, gen))
        except ZfsError as exc:
            return f"journal witness: {type(exc).__name__}: {exc}"
        return None
