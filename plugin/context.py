"""Where a verb finds its SR: the `sr` string xapi hands back (the SR's dataset name), checked
to be a zfsaga SR, and for mutating verbs the engine over that SR's journal. Read-only verbs
stop at the SR: no journal, no lock, no engine import."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zfsaga.plugin.errors import InvalidArgument, SrNotAttached, VolumeDoesNotExist
from zfsaga.steps.zfs import Zfs


@dataclass
class Sr:
    zfs: Zfs
    name: str
    guid: str

    @property
    def key(self) -> str:
        from zfsaga.steps.srs import sr_key

        return sr_key(self.guid)

    def engine(self) -> Any:
        """The saga engine over this SR's journal (mutating verbs only)."""
        from zfsaga.sagas.engine import Engine
        from zfsaga.state.journal import Journal
        from zfsaga.state.location import sr_state_dir

        state = sr_state_dir(self.zfs, self.name, create=True)
        return Engine(self.zfs, Journal(state / "journal.db"), state)

    def locate(self, key: str) -> str:
        """Where the volume with this key lives, by name alone, one lookup at any SR size: a
        volume's key is the uuid zfsaga named it `<sr>/<key>` by, a snapshot's is
        `<volume key>@<uuid>` for `<sr>/<volume key>@<uuid>` (no saga of the plugin's moves
        either off its name: destroy keeps what others need in place, retired)."""
        from zfsaga.steps import names

        try:
            volume, _, snap = key.partition("@")
            names.check_component(volume, "volume key")
            if snap:
                names.check_component(snap, "snapshot key")
        except Exception:
            raise VolumeDoesNotExist(f"no volume {key!r} in SR {self.name}") from None
        return f"{self.name}/{key}"


def zfs() -> Zfs:
    from zfsaga.backend import open_zfs

    return open_zfs()


def open_sr(sr: str) -> Sr:
    """The SR behind xapi's `sr` string; Sr_not_attached when it is not a zfsaga SR now."""
    from zfsaga.steps import names, srs
    from zfsaga.steps.errors import ZfsError

    try:
        names.check_dataset(sr)
    except ZfsError:
        raise InvalidArgument(f"{sr!r} is not an SR this plugin returned") from None
    backend = zfs()
    try:
        ident = srs.identify(backend, sr)
    except ZfsError as exc:
        raise SrNotAttached(f"{sr}: {exc.detail or exc}") from None
    return Sr(backend, sr, ident.guid)
