"""The SR verbs. An SR is an existing pool or filesystem that SR.create takes on (marks, names,
describes), or a pool SR.create makes of the devices given; the `sr` string xapi keeps is the
SR dataset's name. Read-only verbs (stat, ls) read and return; create, destroy, set_name and
set_description run as sagas, and so do attach, detach and destroy of a pool zfsaga made (its
import, export and destroy, journaled on the host: sagas/pool_*.py)."""
from __future__ import annotations

from zfsaga.plugin.context import open_sr, zfs
from zfsaga.plugin.deadline import lock_wait
from zfsaga.plugin.errors import InvalidArgument, SrDoesNotExist
from zfsaga.plugin.sr_config import (CONFIGURATION, checked_provisioning, checked_strings,
                                     checked_tuning)
from zfsaga.plugin.volumes import volume_record
from zfsaga.steps import meta

#: ZFS pool state -> xapi health (README: why each). sr-scan refuses all but Healthy, and
#: retries only Unreachable.
HEALTH = {"ONLINE": "Healthy", "DEGRADED": "Healthy", "SUSPENDED": "Unreachable",
          "FAULTED": "Unavailable", "UNAVAIL": "Unavailable", "OFFLINE": "Unavailable",
          "REMOVED": "Unavailable"}


def create(dbg: str, uuid: str, configuration: dict, name: str, description: str) -> dict:
    from zfsaga.location import sr_state_dir_by_guid
    from zfsaga.plugin.run import run_saga
    from zfsaga.sagas import sr_create
    from zfsaga.sagas.runner import open_engine
    from zfsaga.steps.zfs import names
    from zfsaga.steps.zfs.errors import NotFound, ZfsError

    unknown = sorted(set(configuration) - set(CONFIGURATION) - {"sr_uuid"})
    if unknown:
        raise InvalidArgument(f"SR.create: unknown configuration key {unknown[0]!r}; zfsaga "
                              f"takes {', '.join(sorted(CONFIGURATION))}")
    checked_strings(uuid, name, description)
    if configuration.get("sr_uuid", uuid) != uuid:
        raise InvalidArgument(f"SR.create: configuration's sr_uuid "
                              f"{ascii(configuration['sr_uuid'])} is not the uuid {uuid}")
    if "devices" in configuration:
        from zfsaga.plugin import pools

        return pools.create_on_devices(uuid, configuration, name, description)
    pool_only = sorted(set(configuration) & {"pool", "layout", "ashift"})
    if pool_only:
        raise InvalidArgument(f"SR.create: {pool_only[0]} is for a new pool, with devices=")
    dataset = configuration.get("dataset")
    if not dataset:
        raise InvalidArgument("SR.create: configuration needs dataset=<pool or filesystem>")
    provisioning = checked_provisioning(configuration)
    backend = zfs(writes=True)
    tuning = checked_tuning(backend, dataset, configuration)
    try:
        names.check_dataset(dataset)
        guid = backend.get_props(dataset, ["guid"])["guid"].value
    except NotFound:
        raise SrDoesNotExist(f"no pool or dataset {dataset}") from None
    except ZfsError as exc:
        raise InvalidArgument(f"SR.create: dataset {exc}") from None
    state = sr_state_dir_by_guid(backend, dataset, guid)
    run_saga(f"SR.create on {dataset}", sr_create.start,
             open_engine(backend, state, lock_wait=lock_wait()), dataset, uuid, name,
             description, provisioning, tuning, sr=dataset)
    return {**{k: v for k, v in configuration.items() if k in CONFIGURATION},
            "dataset": dataset, "provisioning": provisioning, "sr_uuid": uuid}


def probe(dbg: str, configuration: dict) -> list:
    """The zfsaga SRs at or below the configuration's dataset (a pool, or any filesystem): one
    listing of user properties finds the marks, then each SR's stat."""
    from zfsaga.steps import srs
    from zfsaga.steps.zfs import names
    from zfsaga.steps.zfs.errors import NotFound, ZfsError

    dataset = configuration.get("dataset")
    if not dataset and configuration.get("devices"):
        from zfsaga.plugin import pools

        return pools.probe_devices(configuration)
    if not dataset:
        raise InvalidArgument("SR.probe: configuration needs dataset=<pool or filesystem> "
                              "or devices=<device,...>")
    backend = zfs()
    try:
        names.check_dataset(dataset)
        marked = [name for name, props in backend.tree_user_props(dataset).items()
                  if srs.SR_MARK in props and "@" not in name]
    except NotFound:
        raise SrDoesNotExist(f"no pool or dataset {dataset}") from None
    except ZfsError as exc:
        raise InvalidArgument(f"SR.probe: dataset {exc}") from None
    found = []
    for name in sorted(marked):
        info = stat(dbg, name)
        config = {"dataset": name,
                  "provisioning": backend.get_props(name, [meta.PROVISIONING])[
                      meta.PROVISIONING].local or "thin"}
        entry = {"configuration": config, "complete": True, "extra_info": {}}
        if "uuid" in info:  # the daemon's rule: an entry with `sr` names its sr_uuid
            config["sr_uuid"] = info["uuid"]
            entry["sr"] = info
        found.append(entry)
    return found


def attach(dbg: str, configuration: dict) -> str:
    """The SR's dataset, after importing its pool when zfsaga made it and it is not imported
    (a reboot, a detach): a saga on the host's journal. The configuration's sr_uuid (SR.create
    returns it, so every PBD's device-config has it) must be the uuid the SR there carries."""
    dataset = configuration.get("dataset")
    unknown = sorted(set(configuration) - set(CONFIGURATION) - {"sr_uuid", "pool_guid"})
    if unknown:
        raise InvalidArgument(f"SR.attach: unknown configuration key {unknown[0]!r}")
    if not dataset:
        raise InvalidArgument("SR.attach: configuration has no dataset (made by SR.create)")
    if configuration.get("pool_guid"):
        if dataset != configuration.get("pool"):
            raise InvalidArgument(f"SR.attach: the SR of a pool zfsaga made is that pool: "
                                  f"dataset {dataset!r} is not pool "
                                  f"{configuration.get('pool')!r}")
        from zfsaga.plugin import pools

        pools.import_made_pool(configuration)
    s = open_sr(dataset, extra=(meta.SR_UUID,))
    check_is_the_sr(s, configuration.get("sr_uuid"))
    return s.name


def check_is_the_sr(s, sr_uuid: object) -> None:
    """Refuse to attach, as the SR xapi names (`sr_uuid`, which xapi puts in the
    configuration), an SR of another uuid that the dataset holds now: a PBD pointing at
    another SR's dataset would hand xapi that SR's VDIs as its own. Without `sr_uuid` (a
    caller that does not send it) there is nothing to compare."""
    from zfsaga.steps.zfs.errors import InvalidValue

    if sr_uuid is None:
        return
    try:
        meta.check_sr_uuid(sr_uuid)
    except InvalidValue as exc:
        raise InvalidArgument(f"SR.attach: sr_uuid {exc}") from None
    found = s.props[meta.SR_UUID].local
    if found != sr_uuid:
        raise InvalidArgument(f"SR.attach: {s.name} holds the SR {found or '(no uuid)'}, not "
                              f"the SR {sr_uuid} xapi names: its configuration points at "
                              f"another SR's dataset")


def destroy(dbg: str, sr: str) -> None:
    """Refused while the SR still lists VDIs (xapi destroys them first). A pool zfsaga made
    is destroyed, when it holds nothing else; any other dataset stays, unmarked."""
    from zfsaga.plugin import pools
    from zfsaga.plugin.run import host_engine, run_saga
    from zfsaga.sagas import sr_destroy
    from zfsaga.steps.srs import MADE_POOL

    s = open_sr(sr, extra=(MADE_POOL,))
    left = ls(dbg, sr)
    if left:
        raise InvalidArgument(f"SR.destroy: {sr} still holds {len(left)} VDI(s), e.g. "
                              f"{left[0]['key']}: destroy them first")
    made = pools.made_pool_alone(s, "SR.destroy")
    pool = (s.zfs.pool_guid(s.name), made) if made else None
    run_saga(f"SR.destroy of {sr}" + (" (its pool)" if pool else ""), sr_destroy.give_back,
             sr_destroy.Runners(s.engine, lambda: host_engine(s.zfs)), s.key, s.name, s.guid,
             pool, sr=None if pool else s.name)
    return None


def detach(dbg: str, sr: str) -> None:
    """The data stays as it is. A pool zfsaga made for this SR, holding nothing else, is
    exported (SR.attach imports it); any other pool or dataset is left imported and mounted."""
    from zfsaga.plugin import pools
    from zfsaga.plugin.run import host_engine, run_saga
    from zfsaga.sagas import pool_export
    from zfsaga.steps.srs import MADE_POOL

    s = open_sr(sr, extra=(MADE_POOL,))
    if pools.made_pool_alone(s, "SR.detach"):
        devices: list[str] = []  # the import searches the devices of the PBD's configuration
        run_saga(f"SR.detach of {sr} (the export of its pool)", pool_export.start,
                 host_engine(s.zfs), s.name, s.zfs.pool_guid(s.name), devices)
    return None


def stat(dbg: str, sr: str) -> dict:
    s = open_sr(sr, extra=("used", "available", meta.NAME, meta.DESCRIPTION, meta.SR_UUID))
    props = s.props
    used, free = int(props["used"].value or 0), int(props["available"].value or 0)
    pool = s.name.split("/")[0]
    state = s.zfs.pool_health(pool)
    health = HEALTH.get(state, "Unavailable")
    message = "" if state == "ONLINE" else f"pool {pool} is {state}"
    out = {"sr": s.name, "name": meta.decode(props[meta.NAME].local or ""),
           "description": meta.decode(props[meta.DESCRIPTION].local or ""),
           "free_space": free, "total_space": used + free, "datasources": [],
           "clustered": False, "health": [health, message]}
    if props[meta.SR_UUID].local:
        out["uuid"] = props[meta.SR_UUID].local
    return out


def ls(dbg: str, sr: str) -> list:
    """Every volume of the SR, from one read whatever its size (the SR's identity, the tree's
    native properties and its local user properties, in one `zfs get -r`). Retired and
    foreign datasets are not listed."""
    from zfsaga.plugin.context import open_sr_tree
    from zfsaga.plugin.volumes import metadata_only, no_collection, settled

    with no_collection():
        s, tree = open_sr_tree(sr)
        native = {name: got[0] for name, got in tree.items()}
        own = {name: got[1] for name, got in tree.items() if got[1]}
        records = [volume_record(s.name, name, props, user)
                   for name, props, user in settled(s.name, native, own)]
        # Metadata-only VDIs (Volume.data_destroy), each key once: a data_destroy stopped
        # before its snapshot went shows the snapshot.
        shown = {r["key"] for r in records}
        records += [volume_record(s.name, name, props, user) for name, props, user
                    in metadata_only(s.name, own.get(s.name, {}))
                    if user[meta.KEY] not in shown]
        # By key: the read's order is not the answer's (a channel program's comes in the
        # order of a Lua table, `zfs get -r` in ZFS's walk): served and in-process answer alike.
        return sorted(records, key=lambda record: record["key"])


def _set_meta(sr: str, prop: str, value: str) -> None:
    from zfsaga.plugin.run import run_saga
    from zfsaga.sagas import sr_set

    s = open_sr(sr, writes=True)
    run_saga(f"setting {prop} of SR {s.name}", sr_set.start, s.engine(), s.key, s.name, s.guid,
             {prop: meta.encode(value)}, sr=s.name)


def set_name(dbg: str, sr: str, new_name: str) -> None:
    _set_meta(sr, meta.NAME, new_name)


def set_description(dbg: str, sr: str, new_description: str) -> None:
    _set_meta(sr, meta.DESCRIPTION, new_description)
