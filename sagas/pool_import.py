"""Import the pool of an SR made on devices (SR.attach after a reboot or a detach). Journaled
on the host: the pool's own journal is on the pool.

    1 import    zpool import <pool guid>, searching the SR's devices     undo: export it again
                first (then zpool's own search: device names move)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zfsaga.sagas.pool_create import pool_resource
from zfsaga.steps.pools import ImportPool

if TYPE_CHECKING:
    from zfsaga.sagas.engine import Engine

KIND = "pool.import"
VERSION = 1


def start(engine: "Engine", pool: str, pool_guid: str, devices: list[str]):
    return engine.run(KIND, pool_resource(pool),
                      lambda: {"pool": pool, "pool_guid": pool_guid, "devices": list(devices)})


def plan(params: dict[str, Any]) -> list:
    return [ImportPool("import", pool="$pool", pool_guid="$pool_guid", devices="$devices")]
