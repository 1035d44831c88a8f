"""The engine split by job (sagas/engine.py, drive.py, progress.py, witness.py, recovery.py,
operator.py, forensics.py) and the loops it removed, checked on the source's syntax trees:
no module of the package reaches itself again through its imports, counting those made inside
a function and those made by name at run time (the dispatcher's verb table, the saga
catalog); the operator's command line acts through sagas/operator.py, never the engine's
internals; and the engine's old public names still answer, for the callers that have them."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

from tools.layout import package_dirs

ROOT = Path(__file__).resolve().parent.parent
#: Folder -> the package it is installed as (pyproject.toml's map, read by tools/layout.py).
FOLDERS = {folder: package for package, folder in package_dirs().items()}
#: Loops other parts of issue 19 remove (steps/ and compensations/; plugin/sr.py and
#: pools.py): each a sorted tuple of its modules. Empty once their changes are in.
OTHERS: set[tuple[str, ...]] = set()  # none left: a new loop fails here


def _module_files() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Line numbers of imports under `if TYPE_CHECKING:` (never run: annotations only)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules `name` imports when it runs, wherever the import statement is."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree)
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != name}


def _by_name_at_run_time() -> dict[str, set[str]]:
    """Imports the source makes from a table of names: the verbs the dispatcher calls, the
    saga modules the catalog loads."""
    from zfsaga.plugin import dispatch
    from zfsaga.sagas import catalog

    verbs = {**dispatch.IMPLEMENTATIONS, **dispatch.DATAPATH_IMPLEMENTATIONS}
    return {"zfsaga.plugin.dispatch": {f"zfsaga.plugin.{v.split(':')[0]}" for v in verbs.values()},
            "zfsaga.sagas.catalog": set(catalog.saga_modules())}


def import_graph() -> dict[str, set[str]]:
    files = _module_files()
    graph = {name: _imports(name, path, set(files)) for name, path in files.items()}
    for name, targets in _by_name_at_run_time().items():
        graph[name] |= targets & set(files)
    return graph


def loops(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Every strongly connected group of more than one module (Tarjan's), as a sorted tuple."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[tuple[str, ...]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.add(tuple(sorted(group)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_loop_finder_finds_a_loop() -> None:
    assert loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {("a", "b", "c")}
    assert loops({"a": {"b"}, "b": set()}) == set()


def test_no_module_reaches_itself_through_its_imports() -> None:
    assert loops(import_graph()) - OTHERS == set()


def test_the_engine_modules_import_downward_only() -> None:
    """progress <- forensics <- witness <- drive <- recovery <- operator <- engine: each job
    may use those beneath it, never one above (the front door `engine` is above them all)."""
    order = ["progress", "forensics", "witness", "drive", "recovery", "operator", "engine"]
    graph = import_graph()
    wrong = []
    for i, name in enumerate(order):
        for target in graph[f"zfsaga.sagas.{name}"]:
            short = target.rsplit(".", 1)[-1]
            if short in order and order.index(short) > i:
                wrong.append(f"sagas/{name}.py imports sagas/{short}.py")
    assert wrong == []


def test_the_cli_acts_through_the_operator_module_only() -> None:
    """zfsaga/cli.py uses nothing private of the engine (`engine._x`), and of sagas/ imports
    only the operator's verbs, the engine's constructor, the sagas it runs by hand and the
    keys' locks (sagas/resources.py: whether a saga is running, read without the engine)."""
    tree = ast.parse((ROOT / "zfsaga/cli.py").read_text())
    private = [f"line {n.lineno}: {ast.unparse(n)}" for n in ast.walk(tree)
               if isinstance(n, ast.Attribute) and n.attr.startswith("_")
               and not n.attr.startswith("__") and isinstance(n.value, ast.Name)
               and n.value.id == "engine"]
    sagas = {f"{n.module}.{a.name}" if n.module == "zfsaga.sagas" else n.module
             for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
             and (n.module or "").startswith("zfsaga.sagas") for a in n.names}
    assert private == []
    assert sagas <= {"zfsaga.sagas.operator", "zfsaga.sagas.engine", "zfsaga.sagas.volume_revert",
                     "zfsaga.sagas.pool_create", "zfsaga.sagas.resources"}, sagas
    engine_names = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and n.module == "zfsaga.sagas.engine" for a in n.names}
    assert engine_names <= {"Engine"}


def test_the_engines_old_names_still_answer() -> None:
    """What plugin/, the harnesses and the sagas import from sagas/engine.py, and the
    methods they call on an Engine, are still there (the split moved their bodies)."""
    engine = importlib.import_module("zfsaga.sagas.engine")
    for name in ("Engine", "Outcome", "SagaBlocked", "SagaNotFound", "JournalLost",
                 "UNWITNESSED", "witnessed", "set_aside_key", "CLEANUP_RETRY_S"):
        assert hasattr(engine, name), name
    for method in ("run", "recover", "resume", "abort", "abandon", "acknowledge",
                   "journal_loss", "check_whole", "strangers", "tagged_by", "left_behind",
                   "_rekey_legacy"):
        assert callable(getattr(engine.Engine, method)), method
