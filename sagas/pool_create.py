"""Make a pool of the devices given and take it on as an SR (SR.create with `devices`). The
pool does not exist when the saga starts, so it journals on the host (location.host_state_dir),
under the lock of the pool's name.

    1 create    zpool create <pool> [layout] <devices>, never forced;      undo: zpool destroy,
                its root born with org.zfsaga:made-pool (this step's            while it is ours
                tag), the SR's uuid, name, description, provisioning,
                snapdev=visible and the admin's tuning
    2 mark      org.zfsaga:sr on the root (its value the root's guid,      undo: remove it
                known only once the pool exists)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zfsaga.steps.pools import CreatePool
from zfsaga.steps.props import SetUserProps
from zfsaga.steps.srs import SR_MARK
from zfsaga.steps.zfs.errors import AlreadyExists
from zfsaga.steps.zfs.interface import Zfs

if TYPE_CHECKING:
    from zfsaga.sagas.engine import Engine

KIND = "pool.create"
VERSION = 1


def pool_resource(pool: str) -> str:
    """The lock and journal key of every pool saga: a pool is one thing on a host by name."""
    return f"pool-{pool}"


def resolve(zfs: Zfs, pool: str, devices: list[str], layout: str, ashift: int | None,
            props: dict[str, str]) -> dict[str, Any]:
    if zfs.pool_guid(pool) is not None:
        raise AlreadyExists(pool, "a pool of that name is imported already: take it on with "
                                  "dataset=<pool>, or choose another pool name")
    return {"pool": pool, "devices": list(devices), "layout": layout, "ashift": ashift,
            "props": dict(props), "unmarked": {SR_MARK: None}}


def start(engine: "Engine", pool: str, devices: list[str], layout: str, ashift: int | None,
          props: dict[str, str]):
    """`props`: what the root is born with (the SR's marks but its guid, and the tuning),
    each checked by the caller."""
    return engine.run(KIND, pool_resource(pool),
                      lambda: resolve(engine.zfs, pool, devices, layout, ashift, props))


def plan(params: dict[str, Any]) -> list:
    return [CreatePool("create", pool="$pool", devices="$devices", layout="$layout",
                       ashift="$ashift", props="$props"),
            SetUserProps("mark", dataset="$pool", guid="@create.guid", props="@create.mark",
                         before="$unmarked")]
