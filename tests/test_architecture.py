"""The folders are the architecture, and these rules keep them so (README, Architecture):
plugin/ reads ZFS but never changes it (every change is a saga's); state/ makes no ZFS call;
imports point downward only (plugin → sagas → steps/compensations → the ZFS layer in
steps/zfs/, which knows nothing above it); every verb's saga, steps and undo are found by name.
Checked on the source's syntax trees, so a new module is held to them as soon as it exists."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The Zfs interface's methods that change ZFS (steps/zfs/interface.py).
MUTATING = {"create_zvol", "create_filesystem", "snapshot", "clone", "promote", "rename",
            "destroy", "destroy_snapshots", "mount", "set_props", "set_witness", "reserve", "set_volsize", "inherit",
            "hold", "release"}
#: What each folder may import of zfsaga (besides itself): downward only.
ALLOWED = {
    "steps/zfs": set(),
    "steps": {"steps/zfs"},  # a step knows nothing of its undo: compensations/ binds them
    "compensations": {"steps", "steps/zfs"},
    "state": set(),
    "sagas": {"steps", "steps/zfs", "compensations", "state", "zfsaga"},
    "plugin": {"sagas", "steps", "steps/zfs", "state", "zfsaga"},
}
PACKAGES = {"zfsaga.steps.zfs": "steps/zfs", "zfsaga.steps": "steps",
            "zfsaga.compensations": "compensations", "zfsaga.state": "state",
            "zfsaga.sagas": "sagas", "zfsaga.plugin": "plugin"}


def modules(folder: str) -> list[Path]:
    found = sorted((ROOT / folder).glob("*.py"))
    assert found, folder
    return found


def folder_of(module: str) -> str | None:
    for package, folder in PACKAGES.items():  # longest first: steps.zfs before steps
        if module == package or module.startswith(package + "."):
            return folder
    return "zfsaga" if module.startswith("zfsaga") else None


def imported(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_imports_point_downward(folder: str) -> None:
    wrong = []
    for path in modules(folder):
        for module in imported(path):
            target = folder_of(module)
            if target is not None and target != folder and target not in ALLOWED[folder]:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong


def test_the_plugin_never_changes_zfs_itself() -> None:
    calls = []
    for path in modules("plugin"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in MUTATING and _looks_like_zfs(node.func.value):
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.func.attr}()")
    assert not calls


def _looks_like_zfs(value: ast.expr) -> bool:
    """`zfs.x()`, `s.zfs.x()`, `backend.x()`, `zfs().x()`: the receivers the plugin uses."""
    if isinstance(value, ast.Call):
        value = value.func
    name = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")
    return name in {"zfs", "backend"}


def test_state_makes_no_zfs_call() -> None:
    for path in modules("state"):
        for module in imported(path):
            assert not module.startswith("zfsaga.steps"), f"{path.name} imports {module}"


def test_every_saga_of_the_catalog_is_a_module_of_sagas_named_for_its_verb() -> None:
    import sys

    from zfsaga.compensations.catalog import compensation_for
    from zfsaga.sagas.catalog import kinds, saga_of
    from zfsaga.steps.catalog import STEP_TYPES

    for kind in kinds():
        saga = saga_of(kind)
        module = sys.modules[saga.__module__]
        # `<object>.<verb>` lives in sagas/<object>_<verb>.py
        assert Path(module.__file__) == ROOT / "sagas" / (kind.replace(".", "_") + ".py")
        for step in saga.plan(_any_params(saga)):
            cls = STEP_TYPES[type(step).__name__]
            assert Path(__import__(cls.__module__, fromlist=["x"]).__file__).parent == \
                ROOT / "steps", f"{kind}: {cls.__name__} is not a module of steps/"
            undo = compensation_for(step)
            if undo is not None:
                assert Path(undo.__code__.co_filename).parent == ROOT / "compensations"


class _Flags(dict):
    """Params enough to build any plan: plans branch on a few flags, all absent here, and
    every input a plan names is there."""

    def __missing__(self, key: str) -> bool:
        return False

    def __contains__(self, key: object) -> bool:
        return True


def _any_params(module) -> dict:
    return _Flags()
