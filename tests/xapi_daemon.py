"""A small emulation of xapi-storage-script for tests: it calls the installed entry points the
way the daemon does: one process per call, `<dir>/<Interface.method>
--json`, the named arguments as one JSON object on stdin, the result parsed from stdout and
type-checked against the IDL, a failure parsed as the error JSON (every key the daemon's
unmarshaller requires), and a lookup of the verb's file that ignores case."""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.entry_server import entry_env
from zfsaga.plugin import idl

VOLUME_ROOT = "usr/libexec/xapi-storage-script/volume"
DATAPATH_ROOT = "usr/libexec/xapi-storage-script/datapath"


@dataclass
class ScriptError(Exception):
    """A call that failed with a well-formed error JSON."""

    code: str
    params: list[str]
    stderr: str

    @property
    def name(self) -> str:
        return self.params[0] if self.params else ""

    def __str__(self) -> str:
        return f"{self.code} {self.params}"


class Daemon:
    def __init__(self, destdir: Path, plugin: str, env: dict[str, str]) -> None:
        self.destdir = destdir
        self.dir = destdir / VOLUME_ROOT / f"org.xen.xapi.storage.{plugin}"
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **entry_env(), **env}
        self.calls: list[str] = []

    def script(self, verb: str) -> Path:
        """The daemon's caseless lookup: `Plugin.query` finds `Plugin.Query`."""
        for entry in os.listdir(self.dir):
            if entry.lower() == verb.lower():
                return self.dir / entry
        raise FileNotFoundError(f"SCRIPT_MISSING {verb}")

    def raw(self, verb: str, stdin: str) -> subprocess.CompletedProcess:
        self.calls.append(verb)
        return subprocess.run([str(self.script(verb)), "--json"], input=stdin,
                              capture_output=True, text=True, env=self.env, timeout=300)

    def call(self, verb: str, **args: Any) -> Any:
        """Call a verb with its named arguments (dbg added); the typed result, or ScriptError."""
        out = self.raw(verb, json.dumps({"dbg": "test", **args}))
        if out.returncode != 0:
            raise parse_error(out)
        result = json.loads(out.stdout)
        idl.check(result, idl.VERBS[verb][1], f"{verb} result")
        return result


def parse_error(out: subprocess.CompletedProcess) -> ScriptError:
    """The error JSON, or an AssertionError saying how it is not the shape xapi requires."""
    assert out.returncode != 0
    try:
        doc = json.loads(out.stdout)
    except ValueError:
        raise AssertionError(f"non-zero exit and bad json on stdout: {out.stdout!r} "
                             f"(stderr {out.stderr[-500:]!r})") from None
    assert set(doc) == {"code", "params", "backtrace"}, doc
    assert isinstance(doc["code"], str) and isinstance(doc["params"], list), doc
    assert all(isinstance(p, str) for p in doc["params"]), doc
    bt = doc["backtrace"]
    assert set(bt) == {"error", "files", "lines"} and isinstance(bt["error"], str), doc
    assert isinstance(bt["files"], list) and isinstance(bt["lines"], list), doc
    return ScriptError(doc["code"], doc["params"], out.stderr)


class Disks:
    """Reads and writes a VDI's data through the datapath, as a VM (or vm-copy) would."""

    def __init__(self, host: Any, run_dir: Path) -> None:
        self.host = host
        self.dp = Daemon(host.xapi.destdir, "zfsaga", {**host.xapi.env,
                                                      "ZFSAGA_RUN_DIR": str(run_dir)})
        self.dp.dir = host.xapi.destdir / DATAPATH_ROOT / "zfsaga"

    def device(self, sr: str, key: str) -> str:
        uri = self.host.xapi.call("Volume.stat", sr=sr, key=key)["uri"][0]
        got = self.dp.call("Datapath.attach", uri=uri, domain="0")
        return dict(got["implementations"])["BlockDevice"]["path"]

    def write(self, sr: str, key: str, label: str) -> str:
        from zfsaga.demo import write_pattern

        return write_pattern(self.device(sr, key), label)

    def read(self, sr: str, key: str) -> str:
        from zfsaga.demo import read_hash

        return read_hash(self.device(sr, key))
