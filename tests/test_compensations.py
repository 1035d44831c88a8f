"""How a step and its undo are bound: each compensation in compensations/ names the step type it
undoes in one registration (compensations/registry.py), steps/ knows nothing of them, and the
table refuses what would make an undo ambiguous or wrong (a second undo for a step, an undo for
a step that is never compensated). Steps are frozen with their plan: what one learns while it
runs lives in the step context. "Set these properties, inherit the rest" is written once."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from zfsaga.steps.base import StepContext
from zfsaga.steps.catalog import STEP_TYPES
from zfsaga.steps.clone import CloneSnapshot
from zfsaga.steps.create import CreateVolume
from zfsaga.steps.retire import RetireDataset
from zfsaga.steps.zfs.model import ModelZfs

ROOT = Path(__file__).resolve().parent.parent


def test_every_compensatable_step_has_one_undo_of_compensations_and_no_other_has_one() -> None:
    from zfsaga.compensations.catalog import UNDOS

    for name, cls in sorted(STEP_TYPES.items()):
        undo = UNDOS.get(cls)
        if cls.kind == "compensatable":
            assert undo is not None, f"{name} is compensatable and has no undo"
            assert Path(undo.__code__.co_filename).parent == ROOT / "compensations", name
        else:
            assert undo is None, f"{name} is {cls.kind}: never compensated, yet has an undo"
    assert set(UNDOS) <= set(STEP_TYPES.values())  # no undo for a step no plan can name


def test_a_step_that_names_its_own_undo_or_has_none_is_refused() -> None:
    """What a step of an older shape (or a new one written in it) would be: found at load."""
    from zfsaga.compensations.catalog import unbound

    class NamesItsUndo(CreateVolume):
        undo = staticmethod(lambda step, ctx: None)

    class HasNone(CreateVolume):
        pass

    assert unbound({"NamesItsUndo": NamesItsUndo, "HasNone": HasNone}) == [
        "HasNone is compensatable and has no undo registered in compensations/",
        "NamesItsUndo is compensatable and has no undo registered in compensations/",
        "NamesItsUndo names its undo itself: register it in compensations/ with @undoes"]
    assert unbound(STEP_TYPES) == []


def test_a_second_undo_for_a_step_is_refused() -> None:
    from zfsaga.compensations.registry import DuplicateUndo, undoes

    import zfsaga.compensations.catalog  # noqa: F401 (CreateVolume's own undo registered)

    with pytest.raises(DuplicateUndo, match="CreateVolume"):
        undoes(CreateVolume)(lambda step, ctx: None)


def test_an_undo_for_a_forward_only_step_is_refused() -> None:
    from zfsaga.compensations.registry import undoes

    with pytest.raises(TypeError, match="RetireDataset is pivot"):
        undoes(RetireDataset)(lambda step, ctx: None)


def test_compensate_runs_the_registered_undo_and_a_forward_only_step_has_none() -> None:
    from zfsaga.compensations.catalog import compensate, compensation_for

    z = ModelZfs(pools=("tank",))
    z.create_filesystem("tank/sr")
    ctx = StepContext(z, "saga1", {"sr": "tank/sr"})
    step = CreateVolume("create", target="tank/sr/v", size=1 << 20, sparse=True)
    step.run(ctx)
    assert z.exists("tank/sr/v")
    compensate(step, ctx)
    assert not z.exists("tank/sr/v")
    assert compensation_for(RetireDataset("retire", dataset="tank/sr/v", guid="1")) is None


def test_a_step_is_frozen_with_its_plan() -> None:
    step = CloneSnapshot("clone", snapshot_guid="1", target="tank/sr/c")
    with pytest.raises(AttributeError, match="frozen"):
        step.seen = True
    with pytest.raises(AttributeError, match="frozen"):
        del step.name
    with pytest.raises(TypeError):
        step.args["target"] = "tank/sr/elsewhere"  # type: ignore[index]
    assert step.describe()["args"] == {"snapshot_guid": "1", "target": "tank/sr/c"}


def test_a_destroy_this_process_made_is_known_to_the_context_not_the_step() -> None:
    """RetireDataset's probe trusts a free name only after this process destroyed the guid
    there: that knowledge belongs to the run (a fresh context knows nothing of it)."""
    z = ModelZfs(pools=("tank",))
    z.create_filesystem("tank/sr")
    z.create_zvol("tank/sr/v", 1 << 20)
    guid = z.get_props("tank/sr/v", ["guid"])["guid"].value
    step = RetireDataset("retire", dataset="tank/sr/v", guid=guid)
    ctx = StepContext(z, "saga1", {"sr": "tank/sr"})
    step.run(ctx)
    assert not z.exists("tank/sr/v") and step.probe(ctx) == "done"
    assert ctx.noted("retire", "destroyed") and not StepContext(z, "s2", {}).noted(
        "retire", "destroyed")


#: Folders whose code may change ZFS through a step or an undo.
CHANGING = ("steps", "compensations", "sagas", "plugin", "zfsaga")


def test_set_these_properties_inherit_the_rest_is_written_once() -> None:
    """Every `.inherit(` outside the ZFS layer is the one in steps/props.py's write_props."""
    found = []
    for folder in CHANGING:
        for path in sorted((ROOT / folder).glob("*.py")):
            tree = ast.parse(path.read_text())
            for fn in ast.walk(tree):
                if not isinstance(fn, ast.FunctionDef):
                    continue
                for node in ast.walk(fn):
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                            and node.func.attr == "inherit":
                        found.append(f"{path.relative_to(ROOT)}:{fn.name}")
    assert sorted(set(found)) == ["steps/props.py:write_props"], found
