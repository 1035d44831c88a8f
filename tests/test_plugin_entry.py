"""The SMAPIv3 front door, as xapi-storage-script meets it: `make install` into a scratch
DESTDIR, then each installed entry point run as a process with `--json` and its arguments on
stdin, by the host's /usr/bin/python3 with no venv and no checkout in sight. Results are
type-checked against the IDL; every bad input gets the error JSON and a non-zero exit."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.entry_server import entry_env
from zfsaga.plugin import idl
from zfsaga.plugin.dispatch import IMPLEMENTATIONS, PLUGIN_TYPE, canonical

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"  # what a dom0 runs the entry points with
VOLUME = "usr/libexec/xapi-storage-script/volume"


@pytest.fixture
def installed(destdir: Path) -> Path:
    return destdir  # conftest's one install per run


def plugin_dir(dest: Path) -> Path:
    return dest / VOLUME / f"org.xen.xapi.storage.{PLUGIN_TYPE}"


def run(dest: Path, verb: str, stdin: str, *argv: str) -> subprocess.CompletedProcess:
    """One call, as the daemon makes it: the script by path, a clean environment."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ZFSAGA_SYSLOG": "0", **entry_env()}
    return subprocess.run([str(plugin_dir(dest) / verb), *(argv or ("--json",))],
                          input=stdin, capture_output=True, text=True, env=env, timeout=60)


def error_of(out: subprocess.CompletedProcess) -> dict:
    """The error JSON, checked for the shape xapi's unmarshaller requires."""
    assert out.returncode != 0
    doc = json.loads(out.stdout)  # stdout holds the error JSON and nothing else
    assert set(doc) == {"code", "params", "backtrace"}
    assert isinstance(doc["code"], str) and all(isinstance(p, str) for p in doc["params"])
    assert set(doc["backtrace"]) == {"error", "files", "lines"}
    assert "Traceback" not in out.stdout
    return doc


def test_install_lays_one_executable_per_implemented_verb(installed: Path) -> None:
    here = plugin_dir(installed)
    verbs = sorted(p.name for p in here.iterdir() if p.is_symlink())
    assert verbs == sorted("Plugin.Query" if v == "Plugin.query" else v for v in IMPLEMENTATIONS)
    for verb in verbs:
        target = (here / verb).resolve()
        assert target.name == "zfsaga-entry" and os.access(target, os.X_OK)
    lib = installed / "usr/lib/zfsaga"
    for module in ("zfsaga/plugin/dispatch.py", "zfsaga/sagas/engine.py", "transitions",
                   "six.py", "tenacity", "loguru"):
        assert (lib / module).exists(), module
    assert list(lib.rglob("*.pyc")), "bytecode is compiled at install"
    assert not (lib / "zfsaga/guest").exists() and not (lib / "tests").exists()
    assert not (lib / "zfsaga/demo.py").exists()


def test_the_operator_cli_is_installed_and_runs_from_the_tree(installed: Path) -> None:
    out = subprocess.run([str(installed / "usr/sbin/zfsaga"), "--help"], capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.returncode == 0 and "resume" in out.stdout, out.stderr


def test_nothing_installed_refers_to_the_checkout_or_the_venv(installed: Path) -> None:
    for path in installed.rglob("*"):
        if path.is_file() and path.suffix != ".pyc":
            text = path.read_text(encoding="utf-8", errors="replace")
            assert str(ROOT) not in text and ".venv" not in text, path
    assert os.readlink(plugin_dir(installed) / "Plugin.Query") == "zfsaga-entry"  # relative


def test_plugin_query_answers_with_the_idls_types(installed: Path) -> None:
    out = run(installed, "Plugin.Query", '{"dbg": "test"}')
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    idl.check(result, idl.VERBS["Plugin.query"][1], "result")
    assert result["plugin"] == PLUGIN_TYPE  # equals the directory's suffix: xapi's SR type
    assert plugin_dir(installed).name == f"org.xen.xapi.storage.{result['plugin']}"
    assert result["required_api_version"] == "5.0"


def test_diagnostics_runs_from_the_installed_tree(installed: Path) -> None:
    out = run(installed, "Plugin.diagnostics", '{"dbg": "test"}')
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert isinstance(report, str) and f"loaded from {installed}/usr/lib/zfsaga" in report


@pytest.mark.parametrize("stdin, why", [
    ('{"dbg": "x"', "not JSON"),                       # truncated
    ("", "not JSON"),                                  # nothing at all
    ("[1, 2]", "expected an object"),                  # not an object
    ('{"dbg": 5}', "expected a string"),               # wrong type
    ("{}", "dbg: expected a value"),                   # missing field
    ('{"dbg": "x", "sr": "a;rm -rf /"}', "no such field"),  # unknown field
    ('{"dbg": "x"}' + " " * (1 << 20), "exceed"),      # far more than any call
])
def test_bad_input_gets_the_error_json(installed: Path, stdin: str, why: str) -> None:
    doc = error_of(run(installed, "Plugin.Query", stdin))
    assert doc["code"] == "SR_BACKEND_FAILURE" and doc["params"][0] == "Invalid_argument"
    assert why in doc["params"][1]


def test_positional_arguments_are_refused_in_the_error_json(installed: Path) -> None:
    doc = error_of(run(installed, "Plugin.Query", "", "static-vdis"))
    assert doc["params"][0] == "Unimplemented" and "--json" in doc["params"][1]


def test_the_entry_point_parses_on_python_3_6() -> None:
    source = (ROOT / "plugin" / "entry.py").read_text(encoding="utf-8")
    ast.parse(source, feature_version=(3, 6))
    with pytest.raises(SyntaxError):  # the check has teeth: 3.8's walrus is refused
        ast.parse("if (x := 1): pass", feature_version=(3, 6))


def test_an_old_python_gets_the_error_json_naming_the_version(installed: Path) -> None:
    """As XCP-ng 8.3's 3.6 would run it (observer mode ignores the shebang): the entry point
    must answer in JSON, not die on the package's newer syntax."""
    entry = plugin_dir(installed) / "zfsaga-entry"
    fake = ("import runpy, sys; sys.version_info = (3, 6, 8, 'final', 0); "
            f"sys.argv = [{str(plugin_dir(installed) / 'Plugin.Query')!r}, '--json']; "
            f"runpy.run_path({str(entry)!r}, run_name='__main__')")
    out = subprocess.run([PYTHON, "-c", fake], input='{"dbg": "x"}', capture_output=True,
                         text=True, timeout=60)
    doc = error_of(out)
    assert "needs Python 3.11" in doc["params"][1] and "Python 3.6.8" in doc["params"][1]


def test_verb_names_are_found_case_insensitively() -> None:
    assert canonical("Plugin.Query") == "Plugin.query" == canonical("plugin.query")


def test_a_result_of_the_wrong_type_is_zfsagas_error_not_xapis(monkeypatch) -> None:
    import io

    from zfsaga.plugin import dispatch, query

    monkeypatch.setattr(query, "query", lambda dbg: {"plugin": 1})
    stdout = io.StringIO()
    assert dispatch.main("Plugin.Query", ["--json"], io.StringIO('{"dbg": "x"}'), stdout) == 1
    doc = json.loads(stdout.getvalue())
    assert "wrong type" in doc["params"][1] and "result.plugin" in doc["params"][1]


def test_uninstall_removes_exactly_what_install_laid(tmp_path: Path) -> None:
    other = tmp_path / VOLUME / "org.xen.xapi.storage.other" / "SR.attach"
    other.parent.mkdir(parents=True)
    other.write_text("another plugin's\n")
    datapath = tmp_path / "usr/libexec/xapi-storage-script/datapath"
    datapath.mkdir(parents=True)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for action in ("install", "uninstall"):
        out = subprocess.run([sys.executable, str(ROOT / "tools" / "install.py"), action,
                              "--destdir", str(tmp_path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before  # volume/, datapath/ and the other plugin stay; ours is gone
