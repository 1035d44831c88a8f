"""The SR's index of snapshots that live away from home. A snapshot keyed `<volume key>@<uuid>`
is born at `<sr>/<volume key>@<uuid>`; a revert to an older snapshot leaves the newer ones on
the retired old head (`<sr>/<volume key>.old-<token>`), and a later revert can move them again.
Finding one by key must not list the SR, so the SR dataset carries one local user property per
snapshot away from home, `org.zfsaga:at:<volume key>.<uuid>` = the dataset now holding it
(relative to the SR). Only sagas that move snapshots write it; readers trust it only after
checking the key on the snapshot it points at.
"""
from __future__ import annotations

from typing import Any

from zfsaga.steps.base import Probe, Step, StepContext, exists
from zfsaga.steps.meta import INDEX_PREFIX, KEY, index_prop  # noqa: F401 (named in meta)
from zfsaga.steps.props import write_props
from zfsaga.steps.zfs.interface import Zfs


def changes(zfs: Zfs, sr: str, holders: list[str]) -> dict[str, str | None]:
    """What the index must change (property -> new value, None to remove) so that each keyed
    snapshot found on `holders` is indexed where it is (no entry at home), and entries
    pointing into `holders` at snapshots no longer there are removed: a holder that is gone
    (destroyed, collected) holds nothing. Entries pointing elsewhere are not this call's to
    judge."""
    want: dict[str, str | None] = {}
    scanned: set[str] = set()
    for holder in holders:
        scanned.add(holder[len(sr) + 1:])
        if not exists(zfs, holder):
            continue
        for name, user in zfs.tree_user_props(holder).items():
            key = user.get(KEY, "")
            if "@" not in name or "@" not in key:
                continue
            dataset = name.partition("@")[0]
            home = f"{sr}/{key.partition('@')[0]}"
            want[index_prop(key)] = None if dataset == home else dataset[len(sr) + 1:]
    now = {p: v for p, v in zfs.user_props(sr).items() if p.startswith(INDEX_PREFIX)}
    out: dict[str, str | None] = {}
    for prop, where in want.items():
        if now.get(prop) != where:
            out[prop] = where
    for prop, where in now.items():
        if prop not in want and where in scanned:
            out[prop] = None  # it pointed into a holder we read, and is not there any more
    return out


class IndexSnapshots(Step):
    """Args: sr, holders (the datasets a saga moved snapshots between, or destroyed).
    Forward-only: the index describes where things are, so after a pivot it is only ever
    brought up to date, never rolled back. Readers that find it stale fall back to a scan."""

    kind = "retriable"

    def _changes(self, ctx: StepContext) -> dict[str, str | None]:
        return changes(ctx.zfs, self.arg(ctx, "sr"), list(self.arg(ctx, "holders")))

    def probe(self, ctx: StepContext) -> Probe:
        return "absent" if self._changes(ctx) else "done"

    def act(self, ctx: StepContext) -> None:
        write_props(ctx.zfs, self.arg(ctx, "sr"), self._changes(ctx))

    def facts(self, ctx: StepContext) -> dict[str, Any]:
        return {}
