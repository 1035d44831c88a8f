"""Export the pool of an SR made on devices (SR.detach), once the caller has checked that it
holds nothing but this SR and that no saga of the SR is active. Journaled on the host.

    1 export    zpool export <pool>, the pool at that name being the      undo: import it again
                one resolved (its guid)
"""
from __future__ import annotations

from zfsaga.sagas.pools import OnePoolStep
from zfsaga.steps.pools import ExportPool


class PoolExport(OnePoolStep):
    KIND = "pool.export"
    VERBS = ("SR.detach",)
    STEP, STEP_NAME, MORE = ExportPool, "export", ("devices",)


start = PoolExport.start
