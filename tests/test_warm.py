"""What the warm server does once before it forks (zfsaga/warm.py), so that no child redoes it
per call: after it, adding a loguru sink asks sysconfig nothing, and pyzfs's conversions and
C types parse nothing (each cost a child ~0.3 s in the emulated guest)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Each check in a fresh interpreter: the caches warmed are per process.
AFTER_PREPARE = """
import sys
sys.path.insert(0, {root!r})
from zfsaga import warm
{before}
warm.prepare()
{check}
print("ok")
"""


def _run(before: str, check: str) -> subprocess.CompletedProcess:
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    code = AFTER_PREPARE.format(root=root, before=textwrap.dedent(before),
                                check=textwrap.dedent(check))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_a_loguru_sink_added_after_prepare_asks_sysconfig_nothing() -> None:
    out = _run("import loguru", """
        import io, sysconfig
        def refuse(*a, **k):
            raise AssertionError("sysconfig asked again")
        sysconfig.get_scheme_names = sysconfig.get_path = refuse
        from loguru import logger
        logger.add(io.StringIO())
        logger.add(io.StringIO())
    """)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_pyzfs_conversions_after_prepare_parse_no_c_type() -> None:
    if subprocess.run([sys.executable, "-c", "import libzfs_core"],
                      capture_output=True).returncode:
        pytest.skip("no pyzfs here")
    out = _run("import libzfs_core", """
        import pycparser
        def refuse(*a, **k):
            raise AssertionError("a C type parsed again")
        pycparser.CParser.parse = refuse
        from libzfs_core import _nvlist
        from libzfs_core.bindings import libzfs_core
        with _nvlist.nvlist_in({b"a": {b"b": b"c", b"n": 7}, b"l": [b"x"]}) as nv:
            assert _nvlist._nvlist_to_dict(nv, {}) == {b"a": {b"b": b"c", b"n": 7},
                                                       b"l": [b"x"]}
        libzfs_core.ffi.new("uint64_t *")
        libzfs_core.ffi.new("nvlist_t **")
    """)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
