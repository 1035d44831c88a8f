"""The folders are the architecture, and these rules keep them so (README, Architecture):
no ZFS change outside a saga (the ZFS layer's own guard refuses one: proved by planting one);
state/ makes no ZFS call;
imports point downward only (plugin → sagas → steps/compensations → the ZFS layer in
steps/zfs/, which knows nothing above it); every verb's saga, steps and undo are found by name.
Checked on the source's syntax trees, so a new module is held to them as soon as it exists."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tools.layout import package_dirs

ROOT = Path(__file__).resolve().parent.parent
#: What each folder may import of zfsaga (besides itself): downward only.
ALLOWED = {
    "steps/zfs": set(),
    "steps": {"steps/zfs"},  # a step knows nothing of its undo: compensations/ binds them
    "compensations": {"steps", "steps/zfs"},
    "state": set(),
    "sagas": {"steps", "steps/zfs", "compensations", "state", "zfsaga"},
    "plugin": {"sagas", "steps", "steps/zfs", "state", "zfsaga"},
}
#: {package: folder}, deepest first, as pyproject.toml states it (tools/layout.py).
PACKAGES = {package: folder for package, folder in package_dirs().items()
            if package != "zfsaga"}


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


# -- no ZFS change outside a saga: proved by the layer's guard (steps/zfs/guard.py) -----------
def mutating_ops() -> set[str]:
    """The ZFS layer's public methods that change ZFS: those whose `_call` says mutating."""
    out = set()
    for path in modules("steps/zfs"):
        for cls in ast.walk(ast.parse(path.read_text())):
            if not isinstance(cls, ast.ClassDef):
                continue
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef) and not fn.name.startswith("_") and any(
                        isinstance(c, ast.Call) and getattr(c.func, "attr", "") == "_call"
                        and len(c.args) > 2 and getattr(c.args[2], "value", None) is True
                        for c in ast.walk(fn)):
                    out.add(fn.name)
    return out


def _planted_world():
    """A model with one of everything a mutation can aim at, made before the guard is armed
    (a test's set-up, as an admin's own commands, is not zfsaga's)."""
    from zfsaga.steps.zfs.model import ModelZfs

    z = ModelZfs(pools=("tank",))
    z.create_filesystem("tank/sr")
    z.create_filesystem("tank/fs")
    z.create_zvol("tank/sr/v", 4 << 20, sparse=False, props={"test:k": "v"})
    z.snapshot(["tank/sr/v@s"])
    z.snapshot(["tank/sr/v@x"])
    z.hold("tank/sr/v@s", "old")
    z.bookmark("tank/sr/v@s", "tank/sr/v#old")
    z.clone("tank/sr/v@s", "tank/sr/c")
    z.create_zvol("tank/sr/e", 1 << 20)
    z.create_pool("away", ["/dev/disk/by-id/a"], "stripe")
    away = z.pool_guid("away")
    z.export_pool("away")
    z.create_pool("made", ["/dev/disk/by-id/m"], "stripe")
    z.guard.armed = True
    return z, away


#: One call of each mutating op, each one ZFS would take on `_planted_world`.
PLANTED = {
    "create_zvol": lambda z, away: z.create_zvol("tank/sr/n", 1 << 20),
    "create_filesystem": lambda z, away: z.create_filesystem("tank/sr/nf"),
    "snapshot": lambda z, away: z.snapshot(["tank/sr/v@n"]),
    "clone": lambda z, away: z.clone("tank/sr/v@s", "tank/sr/n"),
    "promote": lambda z, away: z.promote("tank/sr/c"),
    "rename": lambda z, away: z.rename("tank/sr/c", "tank/sr/c2"),
    "destroy": lambda z, away: z.destroy("tank/sr/e"),
    "destroy_snapshots": lambda z, away: z.destroy_snapshots(["tank/sr/v@x"]),
    "mount": lambda z, away: z.mount("tank/fs"),
    "set_props": lambda z, away: z.set_props("tank/sr/v", {"test:k": "w"}),
    "set_witness": lambda z, away: z.set_witness("tank/sr", "org.zfsaga:journal-gen", 7),
    "reserve": lambda z, away: z.reserve("tank/sr/c"),
    "set_volsize": lambda z, away: z.set_volsize("tank/sr/v", 8 << 20),
    "inherit": lambda z, away: z.inherit("tank/sr/v", "test:k"),
    "hold": lambda z, away: z.hold("tank/sr/v@s", "new"),
    "bookmark": lambda z, away: z.bookmark("tank/sr/v@s", "tank/sr/v#new"),
    "destroy_bookmarks": lambda z, away: z.destroy_bookmarks(["tank/sr/v#old"]),
    "release": lambda z, away: z.release("tank/sr/v@s", "old"),
    "create_pool": lambda z, away: z.create_pool("new", ["/dev/disk/by-id/n"], "stripe"),
    "import_pool": lambda z, away: z.import_pool(away, ["/dev/disk/by-id/a"]),
    "export_pool": lambda z, away: z.export_pool("made"),
    "destroy_pool": lambda z, away: z.destroy_pool("made"),
}


def _everything(z) -> tuple:
    """The whole model as a comparable value: pools, every object's properties and holds."""
    props = ["guid", "type", "origin", "volsize", "refreservation", "mounted", "test:k",
             "org.zfsaga:journal-gen"]
    pools = z.imported_pools()
    trees = {p: z.list_tree(p, props) for p in pools}
    holds = {n: z.holds(n) for t in trees.values() for n in t if "@" in n}
    marks = {n: z.bookmarks(n) for t in trees.values() for n in t if "@" not in n}
    return pools, trees, holds, marks, z.importable_pools(["/dev/disk/by-id/a"])


def test_the_planted_calls_are_every_mutating_op_of_the_layer() -> None:
    """A new mutating method of the ZFS layer is planted below as soon as it exists."""
    assert mutating_ops() == set(PLANTED)


@pytest.mark.parametrize("op", sorted(PLANTED))
def test_a_zfs_change_planted_outside_a_saga_is_refused_by_the_layer(op: str) -> None:
    from zfsaga.steps.zfs.errors import OutsideSaga

    z, away = _planted_world()
    before = _everything(z)
    with pytest.raises(OutsideSaga):
        PLANTED[op](z, away)
    assert _everything(z) == before
    with z.guard.saga_action():  # what the engine opens around a step, an undo, the witness
        PLANTED[op](z, away)
    assert _everything(z) != before


def test_the_state_filesystems_exemption_covers_its_own_name_only() -> None:
    """zfsaga/location.py's one exception: the journal's own filesystem is made before any
    journal exists. Inside the exemption, any other name is still refused."""
    from zfsaga.steps.zfs.errors import OutsideSaga

    z, _ = _planted_world()
    with z.guard.exempt("tank/zfsaga-state"):
        z.create_filesystem("tank/zfsaga-state")
        with pytest.raises(OutsideSaga):
            z.create_filesystem("tank/sr/planted")
    with pytest.raises(OutsideSaga):
        z.mount("tank/zfsaga-state")
    assert not z.exists("tank/sr/planted")


def test_only_the_state_location_is_exempt() -> None:
    """The exemption is named in one module: a second user would be a second hole."""
    users = []
    for folder in (*ALLOWED, "zfsaga"):
        for path in modules(folder):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "exempt":
                    users.append(str(path.relative_to(ROOT)))
    assert users == ["zfsaga/location.py"]


def test_a_verbs_process_is_under_the_guard(tmp_path) -> None:
    """The ZFS a verb's process opens is guarded (the model here, as for every verb the plugin
    tests drive as xapi does): a change planted in a verb's process, outside any saga, is
    refused, and the pool is as it was."""
    import os
    import subprocess
    import sys

    from zfsaga.steps.zfs.shared_model import SharedModelZfs

    path = tmp_path / "pool.model"
    z = SharedModelZfs(path, pools=("tank",))
    z.create_filesystem("tank/sr")
    env = dict(os.environ, ZFSAGA_ZFS=f"model:{path}", ZFSAGA_MODEL_POOLS="tank")
    planted = ("from zfsaga.plugin.context import zfs\n"
               "zfs(writes=True).create_filesystem('tank/sr/planted')\n")
    out = subprocess.run([sys.executable, "-c", planted], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "OutsideSaga" in out.stderr, out.stderr[-500:]
    assert not z.exists("tank/sr/planted")


def test_finding_an_srs_journal_never_marks_a_dataset(monkeypatch, tmp_path) -> None:
    """A verb's engine takes the SR it was given; taking a dataset on as an SR is SR.create's
    saga (its `mark` step), never a side effect of finding where a journal lives."""
    from zfsaga.location import sr_state_dir
    from zfsaga.steps import srs
    from zfsaga.steps.zfs.errors import InvalidName
    from zfsaga.steps.zfs.model import ModelZfs

    monkeypatch.setenv("ZFSAGA_STATE_DIR", str(tmp_path))
    z = ModelZfs(pools=("tank",))
    z.create_filesystem("tank/plain")
    with pytest.raises(InvalidName, match="not a zfsaga SR"):
        sr_state_dir(z, "tank/plain", create=True)
    assert z.get_props("tank/plain", [srs.SR_MARK])[srs.SR_MARK].value is None


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


def test_no_module_cites_a_document_the_project_does_not_have() -> None:
    """A reader who follows a module's reference to a document finds it in the project."""
    import re

    cited = re.compile(r"(?<![\w/.-])((?:docs/)?[\w-]+\.md)\b")
    missing = []
    for folder in sorted({*PACKAGES.values(), "zfsaga", "tests", "tools", "guest", "bench"}):
        for path in sorted((ROOT / folder).glob("*.py")):
            for name in cited.findall(path.read_text()):
                if not (ROOT / name).exists() and not (ROOT / "docs" / name).exists():
                    missing.append(f"{path.relative_to(ROOT)} cites {name}")
    assert missing == []


def test_no_module_or_note_cites_a_module_the_project_does_not_have() -> None:
    """A reader who follows a reference to a module (`sagas/pools.py`) finds it: a file
    moved, merged or renamed takes its citations with it (review of issue 19: the refactor
    left citations of modules that had gone)."""
    import re

    cited = re.compile(r"(?<![\w/.-])((?:sagas|steps|compensations|plugin|state|zfsaga|tools|"
                       r"tests|guest|bench)/[\w/]+\.py)\b")
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for folder in sorted({*PACKAGES.values(), "zfsaga", "tests", "tools", "guest", "bench"}):
        texts += sorted((ROOT / folder).rglob("*.py"))
    missing = []
    for path in texts:
        for name in cited.findall(path.read_text()):
            # zfsaga/<folder>/... is how the installed package names the same file
            if not any((ROOT / n).exists() for n in (name, name.removeprefix("zfsaga/"))):
                missing.append(f"{path.relative_to(ROOT)} cites {name}")
    assert missing == []


def test_the_exemption_lets_by_only_what_making_the_state_filesystem_takes() -> None:
    """location.py makes, tags and mounts `<pool>/zfsaga-state` outside a saga; nothing else
    may pass under its name: not a destroy, not a rename of the journals' home."""
    from zfsaga.steps.zfs.errors import OutsideSaga

    z, _ = _planted_world()
    with z.guard.exempt("tank/zfsaga-state"):
        z.create_filesystem("tank/zfsaga-state")
        z.set_props("tank/zfsaga-state", {"org.zfsaga:role": "state"})
        for planted in (lambda: z.rename("tank/zfsaga-state", "tank/moved"),
                        lambda: z.destroy("tank/zfsaga-state"),
                        lambda: z.snapshot(["tank/zfsaga-state@s"])):
            with pytest.raises(OutsideSaga):
                planted()
    assert z.exists("tank/zfsaga-state") and not z.exists("tank/moved")
    assert not z.exists("tank/zfsaga-state@s")
