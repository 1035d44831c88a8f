"""The tests' install and its warm server, started the way systemd starts it.

`install_tree` lays zfsaga as `make install` does, with PREFIX inside the scratch tree (so the
units' ExecStart= names a real file). `started_server` runs `systemd-socket-activate` on the
installed units' own ListenStream= and ExecStart= (the socket under the scratch run directory
on a shared host; the unit's own path in the guest, which has its own /run), and points the
tests' calls at it through ZFSAGA_TEST_SOCKET, which `entry_env()` turns into each call's
environment. ZFSAGA_TEST_ENTRY=fallback instead points every call at a socket nobody listens
on: the entry points then run each call in-process, the fallback path.
"""
from __future__ import annotations

import configparser
import contextlib
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
UNITS = "usr/lib/systemd/system"


def entry_env() -> dict[str, str]:
    """What a test's call carries so that it reaches the plugin the run's way (server or
    fallback); empty outside a run that installed the plugin."""
    sock = os.environ.get("ZFSAGA_TEST_SOCKET")
    return {"ZFSAGA_SOCKET": sock} if sock else {}


def install_tree(dest: Path) -> Path:
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "install.py"), "install",
                          "--destdir", "/", "--prefix", str(dest / "usr")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return dest


def unit(dest: Path, name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(dest / UNITS / name, encoding="utf-8")
    return parser


def in_guest() -> bool:
    return os.path.exists("/dev/zfs")


def server_argv(dest: Path, socket_path: str) -> list[str]:
    """systemd-socket-activate on the units' own ExecStart= and the given socket."""
    exec_start = shlex.split(unit(dest, "zfsaga.service")["Service"]["ExecStart"])
    return ["systemd-socket-activate", "-l", socket_path, *exec_start]


def listen_path(dest: Path, run_dir: Path) -> str:
    """The socket.unit's ListenStream=: as it is in the guest, under run_dir on the host."""
    listen = unit(dest, "zfsaga.socket")["Socket"]["ListenStream"]
    return listen if in_guest() else str(run_dir / os.path.basename(listen))


@contextlib.contextmanager
def started_server(dest: Path, run_dir: Path) -> Iterator[str | None]:
    """The session's server (or, for the fallback run, a socket path nobody serves)."""
    previous = os.environ.get("ZFSAGA_TEST_SOCKET")
    if os.environ.get("ZFSAGA_TEST_ENTRY") == "fallback":
        os.environ["ZFSAGA_TEST_SOCKET"] = str(run_dir / "nobody" / "server.sock")
        try:
            yield None
        finally:
            _restore(previous)
        return
    path = listen_path(dest, run_dir)
    with server_at(dest, path, run_dir / "server.log") as proc:
        os.environ["ZFSAGA_TEST_SOCKET"] = path
        try:
            yield path
        finally:
            _restore(previous)
            del proc


@contextlib.contextmanager
def server_at(dest: Path, path: str, log: Path) -> Iterator[subprocess.Popen]:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    with open(log, "ab") as out:
        proc = subprocess.Popen(server_argv(dest, path), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, f"{path} did not appear"
            time.sleep(0.02)
        yield proc
    finally:
        proc.kill()
        proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _restore(previous: str | None) -> None:
    if previous is None:
        os.environ.pop("ZFSAGA_TEST_SOCKET", None)
    else:
        os.environ["ZFSAGA_TEST_SOCKET"] = previous
