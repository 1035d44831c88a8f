"""The checkout's folders and the packages they install as, read from the one place that
states them: pyproject.toml's [tool.setuptools.package-dir]. tools/install.py lays the
package out by it and the architecture tests read the import graph by it; nobody writes the
map a second time."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Development-only packages: in the checkout and the wheel, never on a host or in the graph.
DEVELOPMENT_ONLY = ("zfsaga.guest",)


def package_dirs(*, development: bool = False) -> dict[str, str]:
    """{package: folder} ("zfsaga.steps.zfs": "steps/zfs"), the deepest packages first, so that
    the first package a module name starts with is its own."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    kept = {package: folder for package, folder in mapping.items()
            if development or package not in DEVELOPMENT_ONLY}
    return dict(sorted(kept.items(), key=lambda item: -item[0].count(".")))


def top_folders() -> dict[str, str]:
    """{folder: install path} of the folders that hold a package tree of their own (steps/zfs
    lies inside steps/): "sagas" -> "zfsaga/sagas"."""
    dirs = package_dirs()
    return {folder: package.replace(".", "/") for package, folder in dirs.items()
            if not any(folder.startswith(other + "/") for other in dirs.values())}
