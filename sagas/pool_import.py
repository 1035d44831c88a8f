"""Import the pool of an SR made on devices (SR.attach after a reboot or a detach). Journaled
on the host: the pool's own journal is on the pool.

    1 import    zpool import <pool guid>, searching the SR's devices     undo: export it again
                first (then zpool's own search: device names move)
"""
from __future__ import annotations

from zfsaga.sagas.pools import OnePoolStep
from zfsaga.steps.pools import ImportPool


class PoolImport(OnePoolStep):
    KIND = "pool.import"
    VERBS = ("SR.attach",)
    STEP, STEP_NAME, MORE = ImportPool, "import", ("devices",)


start = PoolImport.start
