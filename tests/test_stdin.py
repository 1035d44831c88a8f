"""Stdin as an adversary writes it, through the installed entry points on the file-shared
model: every verb (volume and datapath) with invalid UTF-8 in any string, JSON's lone
surrogate escapes, NaN and Infinity, a key given twice, a top-level value that is not an
object, 200,000 nested arrays, and a closed stdin. Each is refused as Invalid_argument, with
the error JSON and a non-zero exit, before anything runs: ZFS and the host's activation
records are exactly as they were (the valid form of each call would act)."""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import POOL
from tests.xapi_daemon import DATAPATH_ROOT, Daemon, parse_error
from zfsaga.plugin import idl
from zfsaga.plugin.dispatch import DATAPATH_IMPLEMENTATIONS, IMPLEMENTATIONS
from zfsaga.steps.zfs.shared_model import SharedModelZfs

#: Bytes no UTF-8 decoder may accept: a stray byte, an overlong "/", an encoded surrogate, a
#: sequence cut short, a code point past U+10FFFF.
BAD_BYTES = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"]
MARK = "@BAD@"


class World:
    """An SR on the model holding a volume and its snapshot, a fresh dataset an SR.create
    would take, and both daemons (volume and datapath)."""

    def __init__(self, destdir: Path, tmp: Path) -> None:
        path = tmp / "pool.model"
        self.run_dir = tmp / "run"
        env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(tmp / "state"),
               "ZFSAGA_ZFS": f"model:{path}", "ZFSAGA_MODEL_POOLS": POOL,
               "ZFSAGA_RUN_DIR": str(self.run_dir), "ZFSAGA_DEVICE_WAIT": "0"}
        self.zfs = SharedModelZfs(path, pools=(POOL,))
        for name in ("p", "p/sr", "p/free"):
            self.zfs.create_filesystem(f"{POOL}/{name}")
        self.xapi = Daemon(destdir, "zfsaga", env)
        self.dp = Daemon(destdir, "zfsaga", env)
        self.dp.dir = destdir / DATAPATH_ROOT / "zfsaga"
        self.config = self.xapi.call("SR.create", uuid=str(uuid.uuid4()), name="s",
                                     description="", configuration={"dataset": f"{POOL}/p/sr"})
        self.sr = self.xapi.call("SR.attach", configuration=self.config)
        self.vol = self.xapi.call("Volume.create", sr=self.sr, name="v", description="",
                                  size=1 << 20, sharable=False)
        self.snap = self.xapi.call("Volume.snapshot", sr=self.sr, key=self.vol["key"])
        # A later snapshot with CBT on: Volume.list_changed_blocks's good call between the two
        # (the model answers it Unimplemented, never Invalid_argument).
        self.xapi.call("Volume.enable_cbt", sr=self.sr, key=self.vol["key"])
        self.snap2 = self.xapi.call("Volume.snapshot", sr=self.sr, key=self.vol["key"])

    def valid(self, verb: str) -> dict:
        """Arguments with which `verb` would act (or answer) on this world."""
        fields = idl.VERBS[verb][0]
        given = {"sr": self.sr, "key": self.vol["key"], "snapshot": self.snap["key"],
                 "uuid": str(uuid.uuid4()), "name": "n", "description": "d", "size": 1 << 20,
                 "sharable": False, "new_size": 4 << 20, "k": "k", "v": "v",
                 "new_name": "n", "new_description": "d", "uri": self.vol["uri"][0],
                 "domain": "7", "configuration": self.config, "key2": self.snap2["key"],
                 "offset": 0, "length": -1}
        if verb == "Volume.list_changed_blocks":
            given["key"] = self.snap["key"]
        args = {name: given[name] for name in fields}
        if verb == "SR.create":
            args["configuration"] = {"dataset": f"{POOL}/p/free"}
        return {"dbg": "test", **args}

    def state(self) -> dict:
        own = self.zfs.tree_user_props(POOL)
        tree = {n: (p["guid"].value, sorted(own.get(n, {}).items()))
                for n, p in self.zfs.list_tree(POOL, ["guid"]).items()}
        active = self.run_dir / "active"
        records = {p.name: p.read_text() for p in active.iterdir()} if active.exists() else {}
        return {"zfs": tree, "active": records}

    def daemon(self, verb: str) -> Daemon:
        return self.dp if verb in DATAPATH_IMPLEMENTATIONS and verb != "Plugin.query" \
            else self.xapi


def bad_stdins(args: dict) -> list[tuple[str, bytes | None]]:
    """(why, stdin) for one verb's valid arguments: None is a closed stdin."""
    out = []
    strings = [k for k, v in args.items() if isinstance(v, str)]
    for i, field in enumerate(strings):  # invalid UTF-8 in each string, a byte kind each
        bad = BAD_BYTES[i % len(BAD_BYTES)]
        text = json.dumps({**args, field: f"x{MARK}y"}, ensure_ascii=False)
        out.append((f"{bad!r} in {field}", text.encode().replace(MARK.encode(), bad)))
    text = json.dumps(args, ensure_ascii=False)
    # outside any string too: between the tokens, and as the whole input
    out.append(("0xff between tokens", text.encode().replace(b"{", b"{\xff", 1)))
    out.append(("0xfe alone", b"\xfe"))
    for field in strings[:1] + strings[-1:]:  # JSON's own escapes for lone surrogates
        lone = json.dumps({**args, field: f"a{MARK}b"}).replace(MARK, "\\ud800")
        out.append((f"lone surrogate in {field}", lone.encode()))
    lone_key = json.dumps({**args, MARK: "x"}).replace(MARK, "\\udc80")
    out.append(("lone surrogate in a key", lone_key.encode()))
    numbers = [k for k, v in args.items() if isinstance(v, int) and not isinstance(v, bool)]
    for const in ("NaN", "Infinity", "-Infinity"):
        field = numbers[0] if numbers else "dbg"
        out.append((f"{const} as {field}",
                    json.dumps({**args, field: MARK}).replace(f'"{MARK}"', const).encode()))
    last = list(args)[-1]  # the same key twice, the second its valid value: which one wins?
    dup = text[:-1] + ", " + json.dumps(last) + ": " + json.dumps(args[last]) + "}"
    first = json.dumps({last: "other" if isinstance(args[last], str) else 0})[:-1] + ", "
    out.append(("a key twice", (first + text[1:]).encode()))
    out.append(("a key twice, same value", dup.encode()))
    out.append(("an array", json.dumps([args]).encode()))
    out.append(("a string", json.dumps(text).encode()))
    out.append(("200,000 nested [", b"[" * 200_000))
    out.append(("200,000 nested {", b'{"a":' * 200_000))
    out.append(("a closed stdin", None))
    return out


def run(daemon: Daemon, verb: str, stdin: bytes | None) -> subprocess.CompletedProcess:
    script = str(daemon.script(verb))
    if stdin is None:
        return subprocess.run([script, "--json"], stdin=subprocess.DEVNULL,
                              preexec_fn=lambda: os.close(0), capture_output=True,
                              env=daemon.env, timeout=120)
    return subprocess.run([script, "--json"], input=stdin, capture_output=True,
                          env=daemon.env, timeout=120)


@pytest.fixture(scope="module")
def world(destdir: Path, tmp_path_factory) -> World:
    return World(destdir, tmp_path_factory.mktemp("stdin"))


VERBS = sorted({*IMPLEMENTATIONS, *(f"{v}" for v in DATAPATH_IMPLEMENTATIONS
                                    if v != "Plugin.query")})


@pytest.mark.parametrize("verb", VERBS)
def test_bad_stdin_is_invalid_argument_and_changes_nothing(world: World, verb: str) -> None:
    before = world.state()
    daemon = world.daemon(verb)
    for why, stdin in bad_stdins(world.valid(verb)):
        out = run(daemon, verb, stdin)
        out = subprocess.CompletedProcess(out.args, out.returncode,
                                          out.stdout.decode(), out.stderr.decode(errors="replace"))
        assert out.returncode != 0, (verb, why, out.stdout)
        err = parse_error(out)
        assert err.name == "Invalid_argument", (verb, why, err.params)
        assert "Traceback" not in out.stdout
        assert world.state() == before, (verb, why)


def test_the_valid_form_of_each_call_acts(world: World) -> None:
    """The bad calls above differ from these by the bad part only: Volume.destroy with a
    clean dbg destroys the volume (so a refused one proves the refusal, not a wrong key)."""
    before = world.state()
    world.daemon("Volume.set").call(
        "Volume.set", **{k: v for k, v in world.valid("Volume.set").items() if k != "dbg"})
    assert world.state() != before
