"""Destroy the pool SR.create made (SR.destroy of an SR on devices), once the caller has
checked that it holds nothing but this SR's own: no VDI listed, no dataset zfsaga did not make,
no active saga. Journaled on the host: the SR's journal goes with the pool.

    1 destroy   zpool destroy <pool>, the pool at that name being the     the pivot: no undo
                one resolved (its guid) and still marked as made by
                zfsaga (org.zfsaga:made-pool, as read when resolved)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zfsaga.sagas.pool_create import pool_resource
from zfsaga.steps.pools import DestroyPool

if TYPE_CHECKING:
    from zfsaga.sagas.engine import Engine

KIND = "pool.destroy"
VERSION = 1


def start(engine: "Engine", pool: str, pool_guid: str, made: str):
    return engine.run(KIND, pool_resource(pool),
                      lambda: {"pool": pool, "pool_guid": pool_guid, "made": made})


def plan(params: dict[str, Any]) -> list:
    return [DestroyPool("destroy", pool="$pool", pool_guid="$pool_guid", made="$made")]
