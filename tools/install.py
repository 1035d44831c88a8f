"""`make install` / `make uninstall`: lay zfsaga out the way a dom0 takes it, under DESTDIR alone.

    DESTDIR/PREFIX/libexec/xapi-storage-script/volume/org.xen.xapi.storage.zfsaga/
        zfsaga-entry            the entry point (plugin/entry.py, parses on Python 3.6)
        Plugin.Query -> zfsaga-entry, ...   one symlink per implemented verb, no more
    DESTDIR/PREFIX/libexec/xapi-storage-script/datapath/zfsaga/
        zfsaga-entry, Plugin.Query, Datapath.attach, ...   the same, for the datapath
    DESTDIR/PREFIX/lib/zfsaga/  the zfsaga package and its pure-Python dependencies
                                (transitions, six, tenacity, loguru), bytecode compiled
    DESTDIR/PREFIX/lib/zfsaga/STAMP       this install's identity (a digest of its code): the
                                entry points and the warm server compare theirs on every call
    DESTDIR/PREFIX/lib/systemd/system/zfsaga.{socket,service}   the warm server (plugin/server.py),
                                socket-activated; `systemctl enable --now zfsaga.socket`
    DESTDIR/PREFIX/lib/zfsaga/INSTALLED   every path laid, for uninstall

A dom0 has no PyPI and no venv: the dependencies are copied from the interpreter running this
(the development venv), and nothing installed refers to it or to the checkout. pyzfs comes
from the host (python3-pyzfs). Not installed: the guest harness, the tests, the tools.
"""
from __future__ import annotations

import argparse
import compileall
import hashlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from layout import top_folders  # noqa: E402  (pyproject.toml's map, read once)

#: The checkout's folders and where they land in the zfsaga namespace.
PACKAGES = top_folders()
#: What runs on a host besides the package itself (the development tools stay behind).
HOST_ONLY_SKIP = {"zfsaga/demo.py", "zfsaga/guest"}
DEPENDENCIES = ("transitions", "six", "tenacity", "loguru")
OPERATOR_CLI = """#!/usr/bin/python3
# zfsaga's operator CLI (list, show, resume, abort, abandon, recover, gc): make install laid it.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))),
                                "lib", "zfsaga"))
from zfsaga.cli import main  # noqa: E402

sys.exit(main())
"""
VOLUME_DIR = "libexec/xapi-storage-script/volume/org.xen.xapi.storage.zfsaga"
DATAPATH_DIR = "libexec/xapi-storage-script/datapath/zfsaga"
ENTRY = "zfsaga-entry"


def verb_files(datapath: bool = False) -> list[str]:
    """The executables of one plugin directory: its implemented verbs, no more."""
    sys.path.insert(0, str(ROOT))
    from zfsaga.plugin.dispatch import DATAPATH_IMPLEMENTATIONS, IMPLEMENTATIONS

    verbs = DATAPATH_IMPLEMENTATIONS if datapath else IMPLEMENTATIONS
    return sorted("Plugin.Query" if verb == "Plugin.query" else verb for verb in verbs)


def install(dest: Path, prefix: str) -> list[Path]:
    base = dest / prefix.lstrip("/")
    lib = base / "lib" / "zfsaga"
    laid: list[Path] = []

    def copy(src: Path, target: Path, mode: int = 0o644) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        os.chmod(target, mode)
        laid.append(target)

    for folder, package in PACKAGES.items():
        for src in sorted((ROOT / folder).rglob("*.py")):
            rel = f"{package}/{src.relative_to(ROOT / folder).as_posix()}"
            if rel not in HOST_ONLY_SKIP and not any(rel.startswith(s + "/")
                                                     for s in HOST_ONLY_SKIP):
                copy(src, lib / rel)
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise SystemExit(f"install: {name} is not importable here (run `make setup`)")
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            for src in sorted(origin.parent.rglob("*")):
                if src.is_file() and "__pycache__" not in src.parts and src.suffix in (
                        ".py", ".typed", ".pyi"):
                    copy(src, lib / name / src.relative_to(origin.parent))
        else:
            copy(origin, lib / origin.name)
    stamp = lib / "STAMP"
    stamp.write_text(code_digest(lib, laid) + "\n", encoding="ascii")
    laid.append(stamp)
    compileall.compile_dir(str(lib), quiet=1, ddir=str(Path(prefix) / "lib" / "zfsaga"))
    laid += sorted(lib.rglob("*.pyc"))
    for unit in sorted((ROOT / "packaging").glob("zfsaga.*")):
        target = base / "lib" / "systemd" / "system" / unit.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(unit.read_text(encoding="utf-8").replace("@PREFIX@", prefix.rstrip("/")
                                                                   or ""), encoding="utf-8")
        os.chmod(target, 0o644)
        laid.append(target)

    for plugin_dir, datapath in ((base / VOLUME_DIR, False), (base / DATAPATH_DIR, True)):
        copy(ROOT / "plugin" / "entry.py", plugin_dir / ENTRY, 0o755)
        entry = plugin_dir / ENTRY
        # -S: no `site` at start (a third of the interpreter's); entry.py runs it itself
        # when it runs a call in-process, the one path that needs site-packages (pyzfs).
        entry.write_text("#!/usr/bin/python3 -S\n" + entry.read_text(encoding="utf-8"),
                         encoding="utf-8")
        for verb in verb_files(datapath):
            link = plugin_dir / verb
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(ENTRY)
            laid.append(link)
    # The operator CLI, for the admin at a dom0's shell (`zfsaga --sr POOL/SR list`).
    cli = base / "sbin" / "zfsaga"
    cli.parent.mkdir(parents=True, exist_ok=True)
    cli.write_text(OPERATOR_CLI, encoding="utf-8")
    os.chmod(cli, 0o755)
    laid.append(cli)
    manifest = lib / "INSTALLED"
    laid.append(manifest)
    manifest.write_text("".join(f"{p.relative_to(dest).as_posix()}\n" for p in laid),
                        encoding="utf-8")
    return laid


def code_digest(lib: Path, laid: list[Path]) -> str:
    """What identifies an install: a digest of every source file laid under lib, by path and
    content. A warm server started from another install's code has another stamp, and is
    not used (plugin/server.py)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in laid if lib in p.parents):
        digest.update(path.relative_to(lib).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def uninstall(dest: Path, prefix: str) -> list[Path]:
    """Remove exactly what install laid, then the directories it leaves empty, never the
    daemon's own volume/ and datapath/ (xapi-storage-script watches them with inotify)."""
    manifest = dest / prefix.lstrip("/") / "lib" / "zfsaga" / "INSTALLED"
    if not manifest.exists():
        return []
    paths = [dest / line for line in manifest.read_text(encoding="utf-8").split()]
    keep = {dest / prefix.lstrip("/") / "libexec/xapi-storage-script" / d
            for d in ("volume", "datapath")}
    removed = []
    for path in paths:
        if path.is_symlink() or path.exists():
            path.unlink()
            removed.append(path)
    for directory in sorted({p.parent for p in paths}, key=lambda p: -len(p.parts)):
        while directory not in keep and directory != dest and directory.is_dir():
            try:
                directory.rmdir()  # only when empty: another package's files stay
            except OSError:
                break
            directory = directory.parent
    return removed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("install", "uninstall"))
    parser.add_argument("--destdir", default="/")
    parser.add_argument("--prefix", default="/usr")
    args = parser.parse_args()
    dest = Path(args.destdir).resolve()
    done = (install if args.action == "install" else uninstall)(dest, args.prefix)
    print(f"{args.action}: {len(done)} files under {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
