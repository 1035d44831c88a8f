"""What a saga step is: a probe (has its effect happened? done / absent / foreign), an idempotent
act that re-probes after acting, and, for a compensatable step, a compensation that is
idempotent, a no-op when the effect is absent, and touches only what its saga owns. The
compensations live above the steps, in `compensations/`, each bound to the step type it undoes
by one registration (compensations/registry.py): a step knows nothing of its undo.

A step is frozen with its plan: what it learns while it runs (a call that failed, an effect
found half made) is noted in its context (`StepContext.note`), never on the step.

Step arguments are frozen into the journal with the plan. An argument may name an input of the
saga (`$name`, from the params resolved before step 1) or a fact a previous step recorded
(`@step.fact`, e.g. the guid of the clone it made), so a resumed saga acts on the same objects.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Literal, Mapping

from zfsaga.steps.meta import OWNER, RETIRED  # noqa: F401 (the steps' names for them)
from zfsaga.steps.zfs.errors import InvalidName, ZfsError
from zfsaga.steps.zfs.interface import Prop, Zfs

Probe = Literal["done", "absent", "foreign"]
# OWNER, "<saga id>/<step name>", is set at creation: atomic against a crash of the process
# (one ioctl), not against a power cut: see `half_born`. RETIRED hides what others still need.


class Foreign(ZfsError):
    """The target exists but is not this saga's: never adopted, never destroyed."""


class NotDone(ZfsError):
    """The act returned but the probe does not see its effect."""


@dataclass
class StepContext:
    """What a step sees: ZFS, the saga's id and inputs, facts of finished steps."""

    zfs: Zfs
    saga_id: str
    params: dict[str, Any]
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    boundary: Callable[[str], None] = lambda label: None
    #: Steps a dead process was acting on (started, never answered in the journal), each with
    #: when that attempt started: only these can have left a dataset half made.
    cut_off: dict[str, float] = field(default_factory=dict)
    #: What each step (by name) learned in this process that its next probe or act needs.
    #: Never journaled: a resumed saga learns it again from ZFS.
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def value(self, ref: Any) -> Any:
        if isinstance(ref, str) and ref.startswith("$"):
            return self.params[ref[1:]]
        if isinstance(ref, str) and ref.startswith("@"):
            step, fact = ref[1:].split(".", 1)
            return self.facts[step][fact]
        return ref

    def owner_tag(self, step: str) -> dict[str, str]:
        return {OWNER: f"{self.saga_id}/{step}"}

    def note(self, step: str, what: str, value: Any = True) -> None:
        """Remember, for the rest of this run, something `step` saw."""
        self.notes.setdefault(step, {})[what] = value

    def noted(self, step: str, what: str) -> Any:
        """What `step` noted as `what` in this run; False when it noted nothing."""
        return self.notes.get(step, {}).get(what, False)


class FrozenStep(AttributeError):
    """A step's attributes changed after it was built: a plan is frozen in the journal, and a
    step that changed itself would act on something the journal does not say."""


class Step(ABC):
    """One ZFS action of a plan. Subclasses declare `kind` and `version`; a compensatable
    one has its undo registered in compensations/."""

    kind: ClassVar[str] = "compensatable"  # compensatable | pivot | retriable
    version: ClassVar[int] = 1
    #: The probe checks identity before a destructive act: it runs even on a first attempt.
    guards: ClassVar[bool] = False
    #: The facts `facts()` reports once the step is done: all a later step's `@step.fact`
    #: may read (sagas/contract.py refuses a plan reading another before recording it).
    FACTS: ClassVar[tuple[str, ...]] = ()
    name: str
    args: Mapping[str, Any]  # read-only: as the journal's plan holds them

    def __init__(self, name: str, **args: Any) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "args", MappingProxyType(dict(args)))

    def __setattr__(self, attr: str, value: Any) -> None:
        raise FrozenStep(f"step {self.name}: a step is frozen with its plan (set {attr!r}: "
                         f"note it in the StepContext instead)")

    def __delattr__(self, attr: str) -> None:
        raise FrozenStep(f"step {self.name}: a step is frozen with its plan (del {attr!r})")

    def arg(self, ctx: StepContext, key: str, default: Any = ...) -> Any:
        """An argument's value (an input or a recorded fact resolved); `default` for an
        optional one the plan does not name."""
        if key not in self.args and default is not ...:
            return default
        return ctx.value(self.args[key])

    def describe(self) -> dict[str, Any]:
        """The frozen form that goes into the journal's plan."""
        return {"name": self.name, "step": type(self).__name__, "version": self.version,
                "kind": self.kind, "args": dict(self.args)}

    @abstractmethod
    def probe(self, ctx: StepContext) -> Probe:
        """Read-only: has this step's effect happened?"""

    @abstractmethod
    def act(self, ctx: StepContext) -> None:
        """Make the effect happen (only called when the probe says absent)."""

    def facts(self, ctx: StepContext) -> dict[str, Any]:
        """What later steps and compensations need to know (guids, names), once done."""
        return {}

    def run(self, ctx: StepContext, *, untouched: bool = False) -> dict[str, Any]:
        """Idempotent: probe, act if absent, re-probe; the facts once the effect is there.

        `untouched`: the journal holds no earlier attempt of this step. Intent is recorded
        before every act, so its effect cannot be there and the first probe is skipped (it is
        a third of a saga's reads), unless the step `guards` its act with it."""
        state = "absent" if untouched and not self.guards else self.probe(ctx)
        if state == "foreign":
            raise Foreign(self.name, "the target exists and is not this saga's: refusing")
        if state == "absent":
            try:
                self.act(ctx)
            except ZfsError as exc:
                if exc.transient:
                    raise  # the retry probes again
                # "Returned an error but it happened" is real (timeouts, lost replies): the
                # probe, not the return code, says whether the effect is there.
                after = self.probe(ctx)
                if after == "foreign":
                    raise Foreign(self.name, f"the target exists and is not this saga's: "
                                             f"refusing ({exc})") from exc
                if after != "done":
                    raise
                return self.facts(ctx)
            if self.probe(ctx) != "done":
                raise NotDone(self.name, "the action returned but its effect is not there")
        return self.facts(ctx)

    def effect(self, ctx: StepContext) -> str | None:
        """What this step's effect left in ZFS, in words, if it is there (for an operator who
        closes a saga by hand); None when nothing of it remains."""
        return None


def find_by_guid(zfs: Zfs, root: str, guid: str) -> str | None:
    """The current name of the object with this guid under root (names move on promote and
    rename; guids do not). One listing call."""
    for name, props in zfs.list_tree(root, ["guid"]).items():
        if props["guid"].value == guid:
            return name
    return None


def locate(zfs: Zfs, root: str, guid: str, hint: str | None = None) -> str | None:
    """The current name of the object with this guid. The name it had when the saga resolved
    its inputs is tried first (one property read, whatever the SR's size); the SR is listed
    only when the object has moved (a promote or rename in between)."""
    if hint is not None and guid_of(zfs, hint) == guid:
        return hint
    return find_by_guid(zfs, root, guid)


def snapshot_now(step: Step, ctx: StepContext) -> str | None:
    """Where a step's snapshot is now: args `snapshot_guid` and, in plans that record it, the
    name it had when the saga began (`snapshot`, a hint)."""
    hint = step.arg(ctx, "snapshot", None)
    return locate(ctx.zfs, ctx.params["sr"], step.arg(ctx, "snapshot_guid"), hint)


def guid_of(zfs: Zfs, name: str) -> str | None:
    """The guid of name, or None when it does not exist. A name ZFS could not hold (too long)
    cannot exist: None too, so an undo never fails on looking one up."""
    if not exists(zfs, name):
        return None
    return zfs.get_props(name, ["guid"])["guid"].value


def exists(zfs: Zfs, name: str) -> bool:
    """Whether name exists; False for a name that cannot exist (refused by the name checks)."""
    try:
        return zfs.exists(name)
    except InvalidName:
        return False


def props_at(zfs: Zfs, name: str, guid: str, props: list[str]) -> dict[str, Any] | None:
    """`props` of the object at `name`, read with its guid in one call; None when nothing is
    there or another object is (what every guarded probe asks before trusting a name)."""
    if not exists(zfs, name):
        return None
    got = zfs.get_props(name, ["guid", *props])
    return got if got["guid"].value == guid else None


def probe_owned(step: "Step", ctx: StepContext, target: str) -> Probe | None:
    """The probe of a step that makes `target` tagged as its own: done when it carries this
    step's tag, absent when it is this step's half-born dataset (the act remakes it), foreign
    when it carries anything else, None when nothing is at the name."""
    if not exists(ctx.zfs, target):
        return None
    props = ctx.zfs.get_props(target, [OWNER, "creation"])
    if props[OWNER].local == ctx.owner_tag(step.name)[OWNER]:
        return "done"
    return "absent" if half_born(step, ctx, props) else "foreign"


def half_born(step: "Step", ctx: StepContext, props: dict[str, "Prop"]) -> bool:
    """Whether the dataset with these properties (OWNER and creation) is this step's own,
    made but never tagged. ZFS makes a dataset and then, in a transaction of its own, sets the
    properties it was created with (zfs_ioc_create and zfs_ioc_clone: "It would be nice to do
    this atomically"): a power cut between the two leaves it untagged. No process crash can
    split them, and no later step of the saga can have happened (ZFS commits transactions in
    order), so the dataset is fresh and unused. It is this step's when a dead process was in
    this step's act (the journal says it started and nothing more), it has no tag at all, and
    ZFS made it no earlier than that attempt started (`creation` counts whole seconds: one of
    slack). Anything else at the name is someone else's: a dataset older than the attempt, any
    untagged dataset seen by a live process, or one seen after a clock was set back (the saga
    parks)."""
    started = ctx.cut_off.get(step.name)
    creation = props["creation"].value
    if started is None or props[OWNER].local is not None or creation is None:
        return False
    return int(creation) >= int(started) - 1


def remake_half_born(step: "Step", ctx: StepContext, target: str) -> None:
    """Before an act that creates `target`: destroy this step's half-born dataset there (see
    `half_born`), so the act makes it whole, tag and properties with it. A step no dead
    process was acting on has none: no ZFS read on a live saga's path."""
    if step.name not in ctx.cut_off or not exists(ctx.zfs, target):
        return
    if half_born(step, ctx, ctx.zfs.get_props(target, [OWNER, "creation"])):
        ctx.zfs.destroy(target)


def find_tagged(zfs: Zfs, root: str, tag: str) -> str | None:
    """Where the object carrying this ownership tag is now, under root (one listing): a
    dataset a saga made can have been renamed by a later step the journal lost."""
    for name, props in zfs.list_tree(root, [OWNER]).items():
        if props[OWNER].local == tag:
            return name
    return None
