"""Take an existing pool or dataset on as an SR (SR.create). Nothing is moved or made inside
it: the SR is marked, named and described, atomically, in one step.

    1 mark      org.zfsaga:sr, the SR's uuid, name, description       undo: remove them
                and provisioning, as local user properties; and
                snapdev=visible, so snapshot VDIs have a read-only
                device for vm-copy and export (no clone per snapshot);
                and the admin's tuning (compression, sync, logbias,
                primarycache: inherited by every volume; volblocksize:
                a user property Volume.create reads); and, for each
                native property it changes, the admin's value as it
                was (org.zfsaga:before:<prop>), which SR.destroy
                puts back: the dataset carries it, no journal gc
                loses it

The checks come first, in resolve: a filesystem, not zfsaga's state dataset, not inside an SR
and not containing one (srs.adopt's rules), and not already an SR of another uuid.
"""
from __future__ import annotations

from typing import Any

from zfsaga.sagas.contract import Param, Runner, Saga
from zfsaga.steps.base import Step
from zfsaga.steps import meta, srs
from zfsaga.steps.zfs import names
from zfsaga.steps.zfs.errors import AlreadyExists
from zfsaga.steps.props import SetUserProps
from zfsaga.steps.zfs.interface import Zfs


def resolve(zfs: Zfs, dataset: str, uuid: str, name: str, description: str,
            provisioning: str, tuning: dict[str, str] | None = None) -> dict[str, Any]:
    tuning = dict(tuning or {})
    natives = ["snapdev", *(p for p in tuning if p in srs.RESTORED_NATIVE)]
    marks = tuple(dict.fromkeys((meta.SR_UUID, meta.NAME, meta.DESCRIPTION, meta.PROVISIONING,
                                 *tuning, *natives, *map(srs.before_prop, natives),
                                 srs.JOURNAL_GEN)))
    got = srs.adoptable(zfs, dataset, marks)  # the values an undo puts back, in the same read
    if got[srs.SR_MARK].local is not None and got[meta.SR_UUID].local not in (None, uuid):
        raise AlreadyExists(dataset, f"is already the SR {got[meta.SR_UUID].local}")
    guid = got["guid"].value
    props = {srs.SR_MARK: guid, meta.SR_UUID: uuid, meta.NAME: meta.encode(name),
             meta.DESCRIPTION: meta.encode(description), meta.PROVISIONING: provisioning,
             "snapdev": "visible", **tuning, **srs.recording(got, natives)}
    if got[srs.SR_MARK].local is None:
        # A new SR starts its journal's witness afresh: a mark an earlier SR left here (its
        # destroy cut short, a dataset received from elsewhere) would refuse every call.
        props[srs.JOURNAL_GEN] = None
    return {"sr": dataset, "sr_guid": guid, "dataset": dataset, "guid": guid, "props": props,
            "before": {p: got[p].local for p in props}}


def start(runner: Runner, dataset: str, uuid: str, name: str, description: str,
          provisioning: str, tuning: dict[str, str] | None = None):
    """`tuning`: native tunables (steps/srs.py TUNABLE) and meta.VOLBLOCKSIZE, each
    checked by the caller; set on the SR dataset in the same step as its mark."""
    names.check_dataset(dataset)
    guid = runner.zfs.get_props(dataset, ["guid"])["guid"].value
    return SrCreate.begin(runner, srs.sr_key(guid),
                          lambda: resolve(runner.zfs, dataset, uuid, name, description,
                                          provisioning, tuning))


class SrCreate(Saga):
    KIND = "sr.create"
    VERBS = ("SR.create",)

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        return [SetUserProps("mark", dataset=Param("dataset"), guid=Param("guid"),
                             props=Param("props"), before=Param("before"))]
