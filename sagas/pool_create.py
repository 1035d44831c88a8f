"""Make a pool of the devices given and take it on as an SR (SR.create with `devices`). The
pool does not exist when the saga starts, so it journals on the host (location.host_state_dir),
under the lock of the pool's name.

    1 create    zpool create <pool> [layout] <devices>, never forced;      undo: zpool destroy,
                its root born with org.zfsaga:made-pool (this step's            while it is ours
                tag), the SR's uuid, name, description, provisioning,
                snapdev=visible and the admin's tuning
    2 mark      org.zfsaga:sr on the root (its value the root's guid,      undo: remove it
                known only once the pool exists)

A host journal lost (its directory deleted, the host reinstalled, its -wal lost) while this
saga was unfinished leaves a pool whose root carries the made-pool mark of a saga the journal
does not know. xapi's retry of the same SR.create takes that pool over (`adopted`: the plan is
the mark alone, whose undo removes the mark and never destroys the pool) when its root was
born for this very SR (its uuid) and it holds nothing zfsaga did not make; any other such pool
is refused, naming it, its mark and `zfsaga --host recover` (plugin/pools.py lost_made_pools).
"""
from __future__ import annotations

from typing import Any, Callable

from zfsaga.sagas.contract import Fact, Param, Runner, Saga
from zfsaga.sagas.resources import pool_resource
from zfsaga.steps.base import Step
from zfsaga.steps.pools import CreatePool
from zfsaga.steps.props import SetUserProps
from zfsaga.steps import meta
from zfsaga.steps.srs import MADE_POOL, SR_MARK
from zfsaga.steps.zfs.errors import AlreadyExists
from zfsaga.steps.zfs.interface import Zfs


def resolve(zfs: Zfs, known: Callable[[str], bool], pool: str, devices: list[str],
            layout: str, ashift: int | None, props: dict[str, str]) -> dict[str, Any]:
    params = {"pool": pool, "devices": list(devices), "layout": layout, "ashift": ashift,
              "props": dict(props), "unmarked": {SR_MARK: None}}
    if zfs.pool_guid(pool) is None:
        return params
    lost = lost_made_pool(zfs, known, pool)
    if lost is None or zfs.get_props(pool, [SR_MARK])[SR_MARK].local:  # an SR already
        # (the caller answers a retry of its own create: plugin/pools.py _made_for)
        raise AlreadyExists(pool, "a pool of that name is imported already: take it on with "
                                  "dataset=<pool>, or choose another pool name")
    if lost["sr_uuid"] != props.get(meta.SR_UUID) or lost["others"]:
        why = (f"it holds {lost['others'][0]}, which zfsaga did not make" if lost["others"]
               else f"its root was made for the SR {lost['sr_uuid'] or '(none)'}, not this one")
        raise AlreadyExists(pool, f"the pool was made by zfsaga's saga {lost['saga']} "
                                  f"({MADE_POOL}={lost['made_pool']}), which the host journal "
                                  f"does not know (lost), but {why}: nothing was done. See it "
                                  f"with `zfsaga --host recover`; keep it (take it on with "
                                  f"dataset={pool}) or, once nothing in it is needed, "
                                  f"`zpool destroy {pool}` by hand")
    guid = zfs.get_props(pool, ["guid"])["guid"].value
    return {**params, "adopted": lost["made_pool"], "guid": guid,
            "pool_guid": zfs.pool_guid(pool), "mark": {SR_MARK: guid}}


def lost_made_pool(zfs: Zfs, known: Callable[[str], bool], pool: str) -> dict[str, Any] | None:
    """What the imported `pool`'s root says of a saga the host journal does not know
    (`known`) that made it: {pool, made_pool, saga, sr_uuid, others (the datasets in it that
    zfsaga did not make)}; None when the pool carries no made-pool mark or its saga is known."""
    from zfsaga.steps.srs import is_state_dataset

    got = zfs.get_props(pool, [MADE_POOL, meta.SR_UUID])
    made = got[MADE_POOL].local
    if not made or known(made.split("/", 1)[0]):
        return None
    tree = zfs.list_tree(pool, ["type", meta.KEY, meta.OWNER, meta.RETIRED])
    others = sorted(n for n, p in tree.items()
                    if n != pool and p["type"].value != "snapshot" and not is_state_dataset(n)
                    and not any(p[k].local for k in (meta.KEY, meta.OWNER, meta.RETIRED)))
    return {"pool": pool, "made_pool": made, "saga": made.split("/", 1)[0],
            "sr_uuid": got[meta.SR_UUID].local, "others": others}


def start(runner: Runner, pool: str, devices: list[str], layout: str, ashift: int | None,
          props: dict[str, str]):
    """`props`: what the root is born with (the SR's marks but its guid, and the tuning),
    each checked by the caller."""
    return PoolCreate.begin(runner, pool_resource(pool),
                            lambda: resolve(runner.zfs, runner.journal.knows, pool, devices,
                                            layout, ashift, props))


class PoolCreate(Saga):
    KIND = "pool.create"
    VERBS = ("SR.create",)

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        if params.get("adopted"):  # the pool is made (by a saga the journal lost): mark it only
            return [SetUserProps("mark", dataset=Param("pool"), guid=Param("guid"),
                                 props=Param("mark"), before=Param("unmarked"))]
        return [CreatePool("create", pool=Param("pool"), devices=Param("devices"),
                           layout=Param("layout"), ashift=Param("ashift"), props=Param("props")),
                SetUserProps("mark", dataset=Param("pool"), guid=Fact("create", "guid"),
                             props=Fact("create", "mark"), before=Param("unmarked"))]
