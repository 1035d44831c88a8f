"""The saga contract, stated once (sagas/contract.py): a saga registers by being defined, a
second saga of one kind is refused, each kind lives in the file named for it, older kinds
resolve to today's saga (a stuck saga of an older zfsaga resumes), references between steps
are typed yet recorded as the journal always recorded them, the lock's scope is a typed field
the lock code reads, and the plugin runs every saga through one helper. On the model."""
from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path

import pytest

from tests.crash_harness import TOKEN, build_fixture
from tests.test_architecture import imported
from zfsaga.faults import FaultHooks, Faults, SimulatedCrash
from zfsaga.sagas.contract import BadPlan, DuplicateSaga, Fact, Param, Saga
from zfsaga.state.locks import NestedLock, ResourceLock, Scope, lock_for
from zfsaga.steps.props import SetUserProps
from zfsaga.steps.zfs.model import ModelZfs

ROOT = Path(__file__).resolve().parent.parent


def test_a_second_saga_of_one_kind_is_refused() -> None:
    from zfsaga.sagas.catalog import saga_of

    assert saga_of("volume.create") is not None  # the catalog loaded: every saga registered
    with pytest.raises(DuplicateSaga, match="volume.create"):
        type("AnotherCreate", (Saga,), {"KIND": "volume.create", "__module__": "x.y"})
    with pytest.raises(DuplicateSaga, match="vdi.revert"):  # an alias is held as a kind is
        type("AnotherRevert", (Saga,), {"KIND": "z.z", "ALIASES": ("vdi.revert",),
                                        "__module__": "x.y"})
    assert saga_of("volume.create").__name__ == "VolumeCreate"
    assert saga_of("z.z") is None  # the refused one is not half registered
    with pytest.raises(TypeError, match="SCOPE"):
        type("Untyped", (Saga,), {"KIND": "w.w", "SCOPE": True, "__module__": "x.y"})


def test_every_kind_is_a_saga_of_its_verbs_file_and_old_kinds_are_aliases() -> None:
    from zfsaga.sagas.catalog import kinds, saga_modules, saga_of

    assert {k: saga_of(k).__module__.rpartition(".")[2] for k in kinds()} == \
        {k: k.replace(".", "_") for k in kinds()}
    assert saga_of("vdi.revert") is saga_of("volume.revert")
    assert saga_of("meta.set") is saga_of("volume.set")
    assert saga_of("no.such") is None
    assert len(saga_modules()) == len(kinds())  # no saga module without its saga


def test_a_fact_of_no_earlier_step_is_refused_when_the_plan_is_made() -> None:
    from zfsaga.sagas.contract import REGISTRY

    class Backwards(Saga):  # defined, so registered (and taken out again below)
        KIND = "test.backwards"

        @classmethod
        def steps(cls, params: dict) -> list:
            return [SetUserProps("a", dataset=Param("d"), guid=Fact("b", "guid"), props={},
                                 before={}),
                    SetUserProps("b", dataset=Param("d"), guid="1", props={}, before={})]

    try:
        with pytest.raises(BadPlan, match="@b.guid"):
            Backwards.plan({"d": "tank/x"})
        with pytest.raises(BadPlan, match=r"\$d"):  # an input the resolve did not return
            Backwards.plan({"e": "tank/x"})
    finally:
        REGISTRY.pop("test.backwards")
    with pytest.raises(ValueError):
        Param("a.b")


def test_typed_references_are_recorded_in_the_journals_form() -> None:
    from zfsaga.sagas.volume_revert import VolumeRevert
    from zfsaga.steps.catalog import rebuild

    class Resolved(dict):  # as a resolve returns them: every input the plan reads is there
        def __contains__(self, key: object) -> bool:
            return True

    plan = VolumeRevert.plan(Resolved(thick=True, indexed=True))
    recorded = json.loads(json.dumps([step.describe() for step in plan]))
    args = {entry["name"]: entry["args"] for entry in recorded}
    assert args["hold"] == {"snapshot_guid": "$snapshot_guid", "snapshot": "$snapshot",
                            "tag": "$hold_tag"}
    assert args["swap_in"]["guid"] == "@clone.guid" and args["reserve"]["guid"] == "@clone.guid"
    assert [s.describe() for s in rebuild(recorded)] == recorded  # read back as written


def test_the_lock_code_reads_the_scope_it_is_given(tmp_path) -> None:
    from zfsaga.sagas.catalog import kinds, saga_of
    from zfsaga.sagas.resources import scope_of

    assert isinstance(lock_for(tmp_path, "sr-1/new-a", Scope.INSIDE), NestedLock)
    assert isinstance(lock_for(tmp_path, "sr-1/new-a", Scope.WHOLE), ResourceLock)
    with pytest.raises(TypeError):
        lock_for(tmp_path, "sr-1", True)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        lock_for(tmp_path, "sr-1", Scope.INSIDE)
    # Each saga's key says its declared scope back, as the engine reads a recorded key.
    for kind in kinds():
        saga = saga_of(kind)
        key = saga.resource("sr-1", "new-k")
        assert scope_of(key) is saga.SCOPE, kind
    assert saga_of("volume.create").SCOPE is Scope.INSIDE
    assert scope_of("tank/sr") is Scope.WHOLE  # an older version's key: the SR as typed


def test_state_never_spells_the_sr_key() -> None:
    for path in sorted((ROOT / "state").glob("*.py")):
        assert "sr-" not in "".join(
            node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)), path.name


@pytest.mark.parametrize("old_kind, new_kind", [("vdi.revert", "volume.revert"),
                                                ("meta.set", "volume.set")])
def test_a_saga_journaled_under_an_older_kind_resumes(tmp_path, old_kind: str,
                                                      new_kind: str) -> None:
    """A saga of an older zfsaga, cut off mid-way by a crash: its row names the old kind. The
    next engine recovers it to the end."""
    from zfsaga.sagas import volume_revert, volume_set
    from zfsaga.sagas.runner import open_engine
    from zfsaga.steps import meta, srs

    zfs = ModelZfs(pools=("tank",))
    zfs.create_filesystem("tank/t")
    fx = build_fixture(zfs, "tank/t")
    crash = "crash@zfs:before:promote" if new_kind == "volume.revert" else "crash@zfs:after:set"
    faults = Faults.parse(crash, mode="raise")
    zfs.hooks = FaultHooks(faults)
    engine = open_engine(zfs, tmp_path, boundary=faults.boundary, retry_sleep=lambda s: None,
                         lock_wait=2)
    with pytest.raises(SimulatedCrash):
        if new_kind == "volume.revert":
            volume_revert.start(engine, fx["sr"], fx["vdi"], fx["snapshot"], TOKEN)
        else:
            ident = srs.identify(zfs, fx["sr"])
            volume_set.start(engine, ident.key, fx["sr"], ident.guid, fx["vdi"],
                             {meta.NAME: "renamed"})
    engine.journal.close()
    db = sqlite3.connect(tmp_path / "journal.db")
    assert db.execute("SELECT kind FROM saga").fetchall() == [(new_kind,)]
    db.execute("UPDATE saga SET kind=?", (old_kind,))
    db.commit()
    db.close()
    zfs.hooks = FaultHooks(None)
    [out] = open_engine(zfs, tmp_path, retry_sleep=lambda s: None, lock_wait=2).recover()
    assert out.status == "succeeded", out.error
    if new_kind == "volume.revert":
        assert zfs.get_props(fx["vdi"], ["origin"])["origin"].value is None  # promoted
    else:
        assert zfs.user_props(fx["vdi"])[meta.NAME] == "renamed"


def test_no_saga_module_needs_the_engine() -> None:
    from zfsaga.sagas.catalog import saga_modules

    for name in [*saga_modules(), "zfsaga.sagas.contract", "zfsaga.sagas.pools",
                 "zfsaga.sagas.catalog", "zfsaga.sagas.lookup", "zfsaga.sagas.resources"]:
        path = ROOT / "sagas" / (name.rpartition(".")[2] + ".py")
        assert not {m for m in imported(path) if m.startswith("zfsaga.sagas.engine")}, name


def test_the_plugin_runs_every_saga_through_one_helper() -> None:
    """No verb checks an outcome or builds an engine itself (plugin/run.py, sagas/runner.py),
    and no two modules of plugin/ import each other."""
    graph = {}
    for path in sorted((ROOT / "plugin").glob("*.py")):
        text = path.read_text()
        if path.name not in ("run.py", "errors.py"):
            assert "require_effect(" not in text and ".status" not in text, path.name
        assert "Engine(" not in text and "Journal(state" not in text, path.name
        graph[path.stem] = {m.rpartition(".")[2] for m in imported(path)
                            if m.startswith("zfsaga.plugin.")} | \
            {m.rpartition(".")[2] for m in imported(path) if m == "zfsaga.plugin"}
    for path in sorted((ROOT / "plugin").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "zfsaga.plugin":
                graph[path.stem] |= {a.name for a in node.names}
    loops = sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph.get(b, ()))
    assert loops == []


def test_every_mutating_verb_finds_its_saga_by_name() -> None:
    from zfsaga.plugin.dispatch import IMPLEMENTATIONS
    from zfsaga.sagas.catalog import kinds, saga_of, sagas_of_verb

    reads = ("Plugin.", ".stat", ".ls", ".probe")
    mutating = [v for v in IMPLEMENTATIONS if not any(r in v for r in reads)]
    assert [v for v in mutating if not sagas_of_verb(v)] == []
    assert [k.KIND for k in sagas_of_verb("SR.destroy")] == ["pool.destroy", "sr.destroy"]
    declared = {v for kind in kinds() for v in saga_of(kind).VERBS}
    assert declared - set(IMPLEMENTATIONS) == {"zfsaga revert"}  # the operator's own verb


def test_a_fact_its_step_never_reports_is_refused_when_the_plan_is_made() -> None:
    """`Fact("create", "giud")`: the step is earlier, but reports no such fact. Unrefused, the
    saga would be recorded, its step started, and then fail with a KeyError, not a ZFS error:
    the verb's process dies mid-saga, and every recovery dies the same way until it parks."""
    from zfsaga.sagas.contract import REGISTRY
    from zfsaga.steps.create import CreateVolume

    class Typo(Saga):  # defined, so registered (and taken out again below)
        KIND = "test.typo"

        @classmethod
        def steps(cls, params: dict) -> list:
            return [CreateVolume("create", target=Param("d"), size=1 << 20),
                    SetUserProps("mark", dataset=Param("d"), guid=Fact("create", "giud"),
                                 props={}, before={})]

    try:
        with pytest.raises(BadPlan, match="@create.giud"):
            Typo.plan({"d": "tank/x"})
    finally:
        REGISTRY.pop("test.typo")


def test_every_step_reports_the_facts_it_declares() -> None:
    """What a plan may read of a step (its FACTS) is what the step reports once done: every
    saga of the catalog run once on the model, each step's facts compared with its FACTS."""
    from tests.crash_harness import Harness, model_backend
    from tests.saga_scenarios import SCENARIOS
    from zfsaga.steps.base import Step

    reported: dict[str, set] = {}
    run = Step.run

    def spy(self, ctx, **kw):
        facts = run(self, ctx, **kw)
        reported.setdefault(type(self).__name__, set()).update(facts)
        return facts

    Step.run = spy
    try:
        for scenarios in SCENARIOS.values():
            for scenario in scenarios:
                Harness(model_backend, "model", scenario=scenario).reference()
    finally:
        Step.run = run
    from zfsaga.steps.catalog import STEP_TYPES

    assert {name: sorted(got) for name, got in reported.items()} == \
        {name: sorted(STEP_TYPES[name].FACTS) for name in reported}


def test_a_saga_is_begun_only_on_a_key_of_its_own_scope() -> None:
    """The lock a saga takes is read back from its key's form (sagas/resources.py): a key of
    the other form, handed to `begin`, would take the other lock, whatever SCOPE says."""
    from zfsaga.sagas.catalog import saga_of

    class Runner:
        ran: list = []

        def run(self, kind, resource, resolve):
            self.ran.append(resource)

    runner = Runner()
    with pytest.raises(ValueError, match="Scope.WHOLE"):
        saga_of("volume.destroy").begin(runner, "sr-1/new-k", dict)
    with pytest.raises(ValueError, match="Scope.INSIDE"):
        saga_of("volume.create").begin(runner, "sr-1", dict)
    assert runner.ran == []
    saga_of("volume.create").begin(runner, "sr-1/new-k", dict)
    saga_of("volume.destroy").begin(runner, "sr-1", dict)
    assert runner.ran == ["sr-1/new-k", "sr-1"]
