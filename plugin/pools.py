"""The SR verbs' part for an SR on a pool zfsaga makes of devices (SR.create with `devices`):
making it, finding it by its devices (SR.probe), importing it (SR.attach), and deciding whether
detach may export it and destroy destroy it. The pool sagas journal on the host
(plugin/run.py host_engine): a journal cannot live on the pool they make, import, export or
destroy."""
from __future__ import annotations

import os
from typing import Any

from zfsaga.plugin.context import zfs
from zfsaga.plugin.errors import InvalidArgument, SrNotAttached
from zfsaga.plugin.run import host_engine, run_saga
from zfsaga.plugin import sr_config
from zfsaga.steps import meta


def create_on_devices(uuid: str, configuration: dict, name: str, description: str) -> dict:
    """SR.create on a pool it makes: checked in full first, then one saga on the host's
    journal (make the pool, mark it). The configuration returned (xapi's device-config from
    then on) names the pool and its guid, which SR.attach imports by."""
    from zfsaga.sagas import pool_create
    from zfsaga.steps import srs
    from zfsaga.steps.zfs import names
    from zfsaga.steps.zfs.errors import AlreadyExists, ZfsError
    from zfsaga.steps.srs import POOL_LAYOUTS

    devices = _devices(configuration, "SR.create")
    pool = configuration.get("pool") or f"zfsaga-{''.join(c for c in uuid if c.isalnum())[:8]}"
    layout = configuration.get("layout") or ("stripe" if len(devices) == 1 else "")
    ashift_text = str(configuration.get("ashift", "")).strip()
    try:
        names.check_pool(pool)
    except ZfsError as exc:
        raise InvalidArgument(f"SR.create: {exc}") from None
    if configuration.get("dataset") not in (None, pool):
        raise InvalidArgument("SR.create: give dataset (an existing pool or filesystem) or "
                              "devices (a new pool), not both")
    if layout not in POOL_LAYOUTS:
        raise InvalidArgument(f"SR.create: {len(devices)} devices need layout=one of "
                              f"{', '.join(POOL_LAYOUTS)}" if not layout else
                              f"SR.create: layout is one of {', '.join(POOL_LAYOUTS)}, not "
                              f"{layout!r}")
    if len(set(devices)) < max(POOL_LAYOUTS[layout], len(devices)):
        raise InvalidArgument(f"SR.create: {layout} takes at least {POOL_LAYOUTS[layout]} "
                              f"distinct devices")
    if ashift_text and not (ashift_text.isdigit() and 9 <= int(ashift_text) <= 16):
        raise InvalidArgument(f"SR.create: ashift is 9 to 16, not {ashift_text!r}")
    ashift = int(ashift_text) if ashift_text else None
    missing = [d for d in devices if not os.path.exists(d)]
    if missing:
        raise InvalidArgument(f"SR.create: no device {missing[0]}")
    provisioning = sr_config.checked_provisioning(configuration)
    backend = zfs()
    tuning = sr_config.checked_tuning(backend, pool, configuration,
                                  ashift=ashift or sr_config.ASSUMED_ASHIFT)
    props = {meta.SR_UUID: uuid, meta.NAME: meta.encode(name),
             meta.DESCRIPTION: meta.encode(description), meta.PROVISIONING: provisioning,
             "snapdev": "visible", **tuning}
    # The root is born with these: had the admin none of them (SR.destroy of a pool that then
    # holds someone's data keeps the pool, and gives it back with ZFS's own values).
    props.update({srs.before_prop(p): srs.before_record(None) for p in props
                  if p in srs.RESTORED_NATIVE})
    pool_guid = _made_for(backend, pool, uuid)  # xapi's retry of a create that did happen
    if pool_guid is None:
        try:
            outcome = run_saga(f"SR.create of a pool {pool} on {', '.join(devices)}",
                               pool_create.start, host_engine(backend), pool, devices, layout,
                               ashift, props)
        except AlreadyExists as exc:
            # The engine first finishes an orphan (this SR's own create, cut off by a crash:
            # then it is made now) before it finds the pool there.
            pool_guid = _made_for(backend, pool, uuid)
            if pool_guid is None:
                raise InvalidArgument(f"SR.create: {exc}") from None
        else:
            # An adopted pool (made by a saga the host journal lost) has no create step.
            pool_guid = outcome.facts.get("create", {}).get("pool_guid") \
                or backend.pool_guid(pool)
    return {**{k: v for k, v in configuration.items() if k in sr_config.CONFIGURATION},
            "devices": ",".join(devices), "pool": pool, "layout": layout, "dataset": pool,
            "provisioning": provisioning, "pool_guid": pool_guid, "sr_uuid": uuid}


def _made_for(backend, pool: str, uuid: str) -> str | None:
    """The guid of `pool` when it is imported, made by zfsaga and marked as this very SR (a
    second SR.create of one uuid: xapi retried, or an answer was lost); None otherwise."""
    from zfsaga.steps.srs import MADE_POOL, SR_MARK

    pool_guid = backend.pool_guid(pool)
    if pool_guid is None:
        return None
    got = backend.get_props(pool, [MADE_POOL, SR_MARK, meta.SR_UUID])
    made = got[MADE_POOL].local and got[SR_MARK].local and got[meta.SR_UUID].local == uuid
    return pool_guid if made else None


def probe_devices(configuration: dict) -> list:
    """The pools on these devices that are not imported (a host reinstalled, disks moved
    here), each with the configuration SR.attach imports it by. Their labels are read, the
    pools are not imported: whether one is zfsaga's shows once it is attached."""
    devices = _devices(configuration, "SR.probe")
    found = []
    for pool in zfs().importable_pools(devices):
        config = {"devices": ",".join(devices), "pool": pool["name"], "dataset": pool["name"],
                  "pool_guid": pool["guid"]}
        found.append({"configuration": config, "complete": True,
                      "extra_info": {"pool_state": pool.get("state", "")}})
    return found


def _devices(configuration: dict, verb: str, required: bool = True) -> list[str]:
    """The configuration's `devices`, a comma-separated list of absolute device paths, each
    checked (Invalid_argument otherwise). Not `required`: absent or empty is no device."""
    from zfsaga.steps.zfs import names
    from zfsaga.steps.zfs.errors import ZfsError

    raw = configuration.get("devices", "")
    devices = [d.strip() for d in raw.split(",") if d.strip()] if isinstance(raw, str) else []
    if required and not devices:
        raise InvalidArgument(f"{verb}: devices is a comma-separated list of device paths")
    try:
        for device in devices:
            names.check_device(device)
    except ZfsError as exc:
        raise InvalidArgument(f"{verb}: {exc}") from None
    return devices


def import_made_pool(configuration: dict) -> None:
    """Import the SR's pool by its guid when it is not imported (after a reboot, a detach):
    a saga on the host's journal. Another pool imported under its name is refused."""
    from zfsaga.sagas import pool_import
    from zfsaga.steps.zfs import names
    from zfsaga.steps.zfs.errors import ZfsError

    pool, guid = configuration.get("pool") or "", str(configuration["pool_guid"])
    devices = _devices(configuration, "SR.attach", required=False)
    try:
        names.check_pool(pool)
    except ZfsError as exc:
        raise InvalidArgument(f"SR.attach: {exc}") from None
    if not guid.isdigit():
        raise InvalidArgument(f"SR.attach: pool_guid is a number, not {guid!r}")
    backend = zfs()
    found = backend.pool_guid(pool)
    if found == guid:
        return
    if found is not None:
        raise SrNotAttached(f"another pool named {pool} (guid {found}) is imported here; the "
                            f"SR's is {guid}: export that one first")
    run_saga(f"SR.attach: the import of pool {pool} (guid {guid}) on "
             f"{', '.join(devices) or 'any device'}", pool_import.start, host_engine(backend),
             pool, guid, devices)


def made_pool_alone(s: Any, verb: str) -> str | None:
    """The made-pool mark of the SR's pool when zfsaga made it and it holds nothing but this
    SR's own (its volumes, snapshots, retired datasets, its state filesystem) and no saga of
    the SR is active; None for any other SR (its pool or dataset stays imported). A pool that
    also holds datasets zfsaga did not make is someone's: left as it is, and logged."""
    from zfsaga.log import get_logger
    from zfsaga.steps import srs
    from zfsaga.steps.meta import OWNER, RETIRED

    made = s.props[srs.MADE_POOL].local if srs.MADE_POOL in s.props else None
    if not made or "/" in s.name:
        return None
    tree = s.zfs.list_tree(s.name, ["type", meta.KEY, OWNER, RETIRED])
    foreign = [n for n, p in tree.items()
               if n != s.name and p["type"].value != "snapshot" and not srs.is_state_dataset(n)
               and not any(p[prop].local for prop in (meta.KEY, OWNER, RETIRED))]
    if foreign:
        get_logger(verb=verb).warning("pool {} holds {} that zfsaga did not make: the pool "
                                      "stays", s.name, foreign[0])
        return None
    active = _active_sagas(s)
    if active:
        raise InvalidArgument(f"{verb}: saga {active[0]} of SR {s.name} is not finished: "
                              f"see zfsaga show {active[0]}; resume or abort it first")
    return made


def _active_sagas(s: Any) -> list[str]:
    """The SR's unfinished sagas, read without creating anything (no journal yet: none)."""
    from zfsaga.location import state_base
    from zfsaga.state.journal import Journal

    try:
        path = state_base(s.zfs, s.name) / s.key / "journal.db"
    except (FileNotFoundError, PermissionError):
        return []
    if not path.exists():
        return []
    journal = Journal(path)
    try:
        return [row.id for row in journal.active()]
    finally:
        journal.close()

