"""Destroy the pool SR.create made (SR.destroy of an SR on devices), once the caller has
checked that it holds nothing but this SR's own: no VDI listed, no dataset zfsaga did not make,
no active saga. Journaled on the host: the SR's journal goes with the pool.

    1 destroy   zpool destroy <pool>, the pool at that name being the     the pivot: no undo
                one resolved (its guid) and still marked as made by
                zfsaga (org.zfsaga:made-pool, as read when resolved)
"""
from __future__ import annotations

from zfsaga.sagas.pools import OnePoolStep
from zfsaga.steps.pools import DestroyPool


class PoolDestroy(OnePoolStep):
    KIND = "pool.destroy"
    VERBS = ("SR.destroy",)
    STEP, STEP_NAME, MORE = DestroyPool, "destroy", ("made",)


start = PoolDestroy.start
