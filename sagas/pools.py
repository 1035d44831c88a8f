"""What the pool sagas share (sagas/pool_*.py): their key, and the shape of the three that
act on a pool zfsaga made, known by name and guid, in one step (export, import, destroy). They
journal on the host (location.host_state_dir): a pool's own journal cannot record its import,
its export or its end."""
from __future__ import annotations

from typing import Any, ClassVar

from zfsaga.sagas.contract import Param, Runner, Saga
from zfsaga.sagas.resources import pool_resource
from zfsaga.steps.base import Step


class OnePoolStep(Saga):
    """A saga of one step on the pool `pool` of guid `pool_guid`: the step `STEP` named
    `STEP_NAME`, whose arguments are the saga's params of the same names, pool and pool_guid
    first, then `MORE` (given to `start` in that order after them)."""

    STEP: ClassVar[type[Step]]
    STEP_NAME: ClassVar[str]
    MORE: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def start(cls, runner: Runner, pool: str, pool_guid: str, *more: Any) -> Any:
        if len(more) != len(cls.MORE):
            raise TypeError(f"{cls.KIND} takes pool, pool_guid, {', '.join(cls.MORE)}")
        params = {"pool": pool, "pool_guid": pool_guid,
                  **{name: list(v) if isinstance(v, (list, tuple)) else v
                     for name, v in zip(cls.MORE, more)}}
        return cls.begin(runner, pool_resource(pool), lambda: dict(params))

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        names = ("pool", "pool_guid", *cls.MORE)
        return [cls.STEP(cls.STEP_NAME, **{name: Param(name) for name in names})]
