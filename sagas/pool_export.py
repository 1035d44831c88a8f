"""Export the pool of an SR made on devices (SR.detach), once the caller has checked that it
holds nothing but this SR and that no saga of the SR is active. Journaled on the host.

    1 export    zpool export <pool>, the pool at that name being the      undo: import it again
                one resolved (its guid)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zfsaga.sagas.pool_create import pool_resource
from zfsaga.steps.pools import ExportPool

if TYPE_CHECKING:
    from zfsaga.sagas.engine import Engine

KIND = "pool.export"
VERSION = 1


def start(engine: "Engine", pool: str, pool_guid: str, devices: list[str]):
    return engine.run(KIND, pool_resource(pool),
                      lambda: {"pool": pool, "pool_guid": pool_guid, "devices": list(devices)})


def plan(params: dict[str, Any]) -> list:
    return [ExportPool("export", pool="$pool", pool_guid="$pool_guid", devices="$devices")]
