"""The Volume verbs. A volume is the zvol `<sr>/<key>`, its key a uuid zfsaga chose; stat is
one lookup by name at any SR size. create, destroy and the metadata verbs run as sagas."""
from __future__ import annotations

from zfsaga.plugin.context import Sr, open_sr
from zfsaga.plugin.errors import (InvalidArgument, SmapiError, VolumeDoesNotExist,
                                  saga_failed)
from zfsaga.plugin.volumes import volume_record
from zfsaga.steps import meta

NATIVE = ["type", "volsize", "refreservation", "referenced"]


def _existing(s: Sr, key: str) -> tuple[str, dict, dict]:
    """The volume's dataset, native and user properties; Volume_does_not_exist otherwise."""
    from zfsaga.steps.base import RETIRED
    from zfsaga.steps.errors import NotFound

    dataset = s.volume(key)
    try:
        native, user = s.zfs.describe(dataset, NATIVE)
    except NotFound:
        raise VolumeDoesNotExist(f"no volume {key} in SR {s.name}") from None
    if native["type"].value != "volume" or user.get(meta.KEY) != key or RETIRED in user:
        raise VolumeDoesNotExist(f"no volume {key} in SR {s.name}")
    return dataset, native, user


def create(dbg: str, sr: str, name: str, description: str, size: int,
           sharable: bool) -> dict:
    from zfsaga.sagas import volume_create

    if sharable:
        raise InvalidArgument("Volume.create: zfsaga volumes are not sharable")
    if size < 0:
        raise InvalidArgument(f"Volume.create: size {size} is negative")
    s = open_sr(sr)
    thick = s.zfs.get_props(s.name, [meta.PROVISIONING])[meta.PROVISIONING].local == "thick"
    outcome = volume_create.start(s.engine(), s.key, s.name, s.guid, name, description, size,
                                  thick)
    if outcome.status != "succeeded":
        raise saga_failed(outcome, "Volume.create")
    key = outcome.facts["create"]["name"].rsplit("/", 1)[1]
    return stat(dbg, sr, key)


def stat(dbg: str, sr: str, key: str) -> dict:
    s = open_sr(sr)
    dataset, native, user = _existing(s, key)
    return volume_record(dataset, native, user)


def destroy(dbg: str, sr: str, key: str) -> None:
    from zfsaga.sagas import volume_destroy

    s = open_sr(sr)
    dataset, _, _ = _existing(s, key)
    outcome = volume_destroy.start(s.engine(), s.key, s.name, s.guid, dataset)
    if outcome.status != "succeeded":
        raise saga_failed(outcome, f"Volume.destroy of {key}")
    return None


def resize(dbg: str, sr: str, key: str, new_size: int) -> None:
    from zfsaga.sagas import volume_resize
    from zfsaga.steps.errors import InvalidValue, NoSpace

    s = open_sr(sr)
    dataset, _, _ = _existing(s, key)
    try:
        outcome = volume_resize.start(s.engine(), s.key, s.name, s.guid, dataset, new_size)
    except InvalidValue as exc:  # xapi's own code and words for a shrink (smapiv3.md 1.7)
        raise ResizeRefused("VDI Invalid size", exc.detail) from None
    except NoSpace as exc:
        raise ResizeRefused("No space", exc.detail) from None
    if outcome.status != "succeeded":
        raise saga_failed(outcome, f"Volume.resize of {key}")
    return None


class ResizeRefused(SmapiError):
    code = "SR_BACKEND_FAILURE_79"

    def __init__(self, what: str, why: str) -> None:
        super().__init__(what, why)
        self.name, self.params = what, [what, why]


def _set(sr: str, key: str, props: dict[str, str | None]) -> None:
    from zfsaga.sagas import set_meta

    s = open_sr(sr)
    dataset, _, _ = _existing(s, key)
    outcome = set_meta.start(s.engine(), s.key, s.name, s.guid, dataset, props)
    if outcome.status != "succeeded":
        raise saga_failed(outcome, f"changing the metadata of {key}")


def set_key(dbg: str, sr: str, key: str, k: str, v: str) -> None:
    _set(sr, key, {meta.key_prop(k): meta.encode(v)})


def unset_key(dbg: str, sr: str, key: str, k: str) -> None:
    _set(sr, key, {meta.key_prop(k): None})


def set_name(dbg: str, sr: str, key: str, new_name: str) -> None:
    _set(sr, key, {meta.NAME: meta.encode(new_name)})


def set_description(dbg: str, sr: str, key: str, new_description: str) -> None:
    _set(sr, key, {meta.DESCRIPTION: meta.encode(new_description)})
