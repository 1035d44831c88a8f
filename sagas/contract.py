"""What every saga is, stated once. A saga is a class of a module of sagas/ named for its verb
(`sagas/volume_revert.py` holds `volume.revert`), subclassing `Saga`; defining it registers it
in the catalog (sagas/catalog.py), so no table lists sagas by hand. It declares:

    KIND     its journal name, `<object>.<verb>` as its file is `<object>_<verb>.py`
    VERSION  of its plan's shape: a recorded plan of another version is parked, not resumed
    SCOPE    what its lock covers (state/locks.py Scope): the whole resource (an SR, a pool) or
             one thing inside its SR (a new volume), the SR's lock then held shared
    EFFECT   the step after which the caller's request holds (None: every step before the
             forward-only tail, sagas/progress.py)
    DRAINS   it ends its SR: the cleanups set aside from it must finish first
    ALIASES  the kinds older versions journaled it under: a stuck saga of one still resumes
    VERBS    the SMAPIv3 or operator verbs it serves, so a verb's saga is found by its name
    READ     the step after which its caller's read runs (None: no read), under the lock, in
             the process that began it: a verb that reads what the saga makes for it (the
             temporary snapshot Volume.list_changed_blocks counts from). Never journaled: a
             recovered saga skips it (no caller waits for it), and a read that fails is the
             saga's failure, compensated like a step's, so what it read goes with it
    steps()  its plan, built from the params its resolve returned

Steps' arguments that are not literal name the saga's inputs and earlier steps' facts by typed
references, `Param("guid")` and `Fact("clone", "guid")`, which are the strings the journal has
always recorded (`$guid`, `@clone.guid`): a plan written today reads the same in a journal as
one of an older version, and one of an older version still resumes.

A saga module never imports the engine: its `start` is handed a `Runner` (the engine, or
anything that runs a saga by kind, resource and resolve), and runs itself through it."""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Protocol

from zfsaga.sagas.resources import scope_of
from zfsaga.state.locks import Scope
from zfsaga.steps.base import Step
from zfsaga.steps.zfs.interface import Zfs

Resolve = Callable[[], dict[str, Any]]
#: A caller's read (Saga.READ): handed the facts of the steps done so far.
Read = Callable[[dict[str, dict[str, Any]]], None]


class Runner(Protocol):
    """What runs a saga (sagas/engine.py Engine): the ZFS it reads, and `run`, which locks the
    resource, calls `resolve` under the lock, journals the plan and drives it."""

    zfs: Zfs
    #: Its journal: `knows(saga_id)` says whether it has a record of that saga (pool.create's
    #: resolve tells a pool of a saga the journal lost from one of a saga it knows).
    journal: Any

    def run(self, kind: str, resource: str, resolve: Resolve,
            read: Read | None = None) -> Any: ...


class Param(str):
    """A step argument that is the saga's resolved input `name`: recorded as `$name`."""

    def __new__(cls, name: str) -> "Param":
        if not name or "." in name:
            raise ValueError(f"a saga input is named by one word, not {name!r}")
        return super().__new__(cls, "$" + name)

    @property
    def name(self) -> str:
        return self[1:]


class Fact(str):
    """A step argument that is the fact `name` an earlier step of the plan recorded once done
    (the guid of the clone it made): recorded as `@step.name`."""

    def __new__(cls, step: str, name: str) -> "Fact":
        if not step or not name or "." in step:
            raise ValueError(f"a fact is named by its step and its name, not {step!r}.{name!r}")
        return super().__new__(cls, f"@{step}.{name}")

    @property
    def step(self) -> str:
        return self[1:].split(".", 1)[0]

    @property
    def fact(self) -> str:
        return self[1:].split(".", 1)[1]


class BadPlan(ValueError):
    """A plan names an input its resolve did not return, or a fact of a step that does not come
    before it: it could never run, so it is refused before anything is recorded."""


class DuplicateSaga(ValueError):
    """Two sagas claim one kind (or alias): the journal could not tell them apart."""


#: Every saga class defined, by kind and by each alias (sagas/catalog.py fills it by import).
REGISTRY: dict[str, type["Saga"]] = {}


def register(cls: type["Saga"]) -> None:
    """Add `cls` under its kind and aliases; a kind another saga holds already is refused."""
    if not isinstance(cls.SCOPE, Scope):
        raise TypeError(f"{cls.__name__}.SCOPE is a state.locks.Scope, not {cls.SCOPE!r}")
    if not isinstance(cls.VERSION, int) or isinstance(cls.VERSION, bool):
        raise TypeError(f"{cls.__name__}.VERSION is a whole number, not {cls.VERSION!r}")
    for kind in (cls.KIND, *cls.ALIASES):
        held = REGISTRY.get(kind)
        if held is not None and (held.__module__, held.__qualname__) != (cls.__module__,
                                                                        cls.__qualname__):
            raise DuplicateSaga(f"saga kind {kind!r} is {held.__module__}.{held.__name__}'s "
                                f"already; {cls.__module__}.{cls.__name__} cannot take it")
    for kind in (cls.KIND, *cls.ALIASES):
        REGISTRY[kind] = cls


class Saga:
    """The contract (module docstring). Subclass it with a KIND to define and register a saga;
    a subclass without one is a shape others share (sagas/pools.py)."""

    KIND: ClassVar[str]
    VERSION: ClassVar[int] = 1
    SCOPE: ClassVar[Scope] = Scope.WHOLE
    EFFECT: ClassVar[str | None] = None
    DRAINS: ClassVar[bool] = False
    ALIASES: ClassVar[tuple[str, ...]] = ()
    VERBS: ClassVar[tuple[str, ...]] = ()
    READ: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "KIND" in cls.__dict__:
            register(cls)

    @classmethod
    def steps(cls, params: dict[str, Any]) -> list[Step]:
        raise NotImplementedError(f"{cls.__name__} defines no steps")

    @classmethod
    def plan(cls, params: dict[str, Any]) -> list[Step]:
        """The plan for `params`, its references checked: each input is one of `params`, each
        fact is of an earlier step."""
        plan = cls.steps(params)
        seen: dict[str, Step] = {}
        for step in plan:
            for key, ref in step.args.items():
                if isinstance(ref, Param) and ref.name not in params:
                    raise BadPlan(f"{cls.KIND}: step {step.name!r} argument {key!r} reads "
                                  f"{ref}, which the saga's resolve did not return")
                if isinstance(ref, Fact) and ref.step not in seen:
                    raise BadPlan(f"{cls.KIND}: step {step.name!r} argument {key!r} reads "
                                  f"{ref}, of no earlier step")
                # Unchecked, a misnamed fact would fail only once its reader runs, with a
                # KeyError after the steps before it acted: refused while nothing is recorded.
                if isinstance(ref, Fact) and ref.fact not in type(seen[ref.step]).FACTS:
                    raise BadPlan(f"{cls.KIND}: step {step.name!r} argument {key!r} reads "
                                  f"{ref}, which {type(seen[ref.step]).__name__} does not "
                                  f"report (its FACTS)")
            seen[step.name] = step
        if cls.READ is not None and cls.READ not in seen:
            raise BadPlan(f"{cls.KIND}: its READ names {cls.READ!r}, no step of its plan")
        return plan

    @classmethod
    def resource(cls, owner: str, inside: str | None = None) -> str:
        """The key the saga locks and journals under: `owner` (an SR's key, a pool's), or for
        a saga of Scope.INSIDE the thing `inside` it (`<owner>/<inside>`)."""
        if cls.SCOPE is Scope.INSIDE:
            if not inside:
                raise ValueError(f"{cls.KIND} locks one thing inside its SR: name it")
            return f"{owner}/{inside}"
        return owner

    @classmethod
    def begin(cls, runner: Runner, resource: str, resolve: Resolve,
              read: Read | None = None) -> Any:
        """Run this saga on `resource` through `runner`; `resolve` is called under its lock,
        `read` after its READ step. The engine takes the lock the key's form says
        (sagas/resources.py scope_of): a key of the other form would take the other lock, so it
        is refused here, and so is a read handed to a saga that has no place for one."""
        if scope_of(resource) is not cls.SCOPE:
            raise ValueError(f"{cls.KIND} locks {cls.SCOPE}, and {resource!r} is a key of "
                             f"{scope_of(resource)}: build it with {cls.__name__}.resource")
        if read is None:
            return runner.run(cls.KIND, resource, resolve)
        if cls.READ is None:
            raise ValueError(f"{cls.KIND} has no READ step: a caller's read has no place in it")
        return runner.run(cls.KIND, resource, resolve, read=read)
