"""The warm server (plugin/server.py) and the thin entry point (plugin/entry.py), on the host
with the file-shared model, the server always started as systemd starts it:
`systemd-socket-activate` on the installed units' own ListenStream= (moved under a test's
directory, /run being the host's) and ExecStart= (an install with --destdir / and a prefix of
the test's, so that ExecStart's path is real). Each test asserts what the caller (xapi) and
the pool see: the answer, the exit status, the VDIs, the journal, the server's own process
(its memory, descriptors and children), never only that something ran."""
from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import POOL
from tests.xapi_daemon import VOLUME_ROOT, Daemon, parse_error
from zfsaga.steps.zfs.shared_model import SharedModelZfs

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


# -- an install and a server, as systemd has them ----------------------------------------------
@dataclass
class Install:
    """`make install` with --destdir / and --prefix <root>/usr: the units' paths are real."""

    root: Path

    @property
    def prefix(self) -> Path:
        return self.root / "usr"

    @property
    def lib(self) -> Path:
        return self.prefix / "lib" / "zfsaga"

    @property
    def units(self) -> Path:
        return self.prefix / "lib" / "systemd" / "system"

    @property
    def volume_dir(self) -> Path:
        return self.root / VOLUME_ROOT / "org.xen.xapi.storage.zfsaga"

    @property
    def stamp(self) -> bytes:
        return (self.lib / "STAMP").read_bytes().strip()

    def unit(self, name: str) -> dict[str, str]:
        """A unit's settings, `Key=value` lines (each key once in ours)."""
        settings = {}
        for line in (self.units / name).read_text(encoding="utf-8").splitlines():
            key, eq, value = line.partition("=")
            if eq and not line.startswith("#"):
                settings[key.strip()] = value.strip()
        return settings

    def lay(self) -> None:
        out = subprocess.run([sys.executable, str(ROOT / "tools" / "install.py"), "install",
                              "--destdir", "/", "--prefix", str(self.prefix)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr


def fresh_install() -> Install:
    """An install under /tmp that `nobody` can read (pytest's own directories are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="zfsaga-server-"))
    root.chmod(0o755)
    inst = Install(root)
    inst.lay()
    return inst


@pytest.fixture(scope="module")
def installed():
    inst = fresh_install()
    yield inst
    shutil.rmtree(inst.root, ignore_errors=True)


class Server:
    """zfsaga.service behind zfsaga.socket, started the way systemd starts it."""

    def __init__(self, inst: Install, run_root: Path) -> None:
        listen = inst.unit("zfsaga.socket")["ListenStream"]
        assert listen.startswith("/run/"), listen
        self.socket = Path(str(run_root) + listen)  # /run/zfsaga/... under the test's dir
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        for d in (self.socket.parent, *self.socket.parent.parents):
            d.chmod(0o711)  # traversable: the non-root test connects as nobody
            if d == run_root:
                break
        self.exec_start = inst.unit("zfsaga.service")["ExecStart"].split()
        assert Path(self.exec_start[0]).is_file(), self.exec_start
        self.log = run_root / "server.log"
        self.inst = inst
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        """Listen (systemd-socket-activate binds, then execs the service on the first
        connection, as the socket unit does); wait until the socket is there."""
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", str(self.socket), *self.exec_start],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        log.close()
        until = time.monotonic() + 10
        while b"Listening on" not in self.log.read_bytes():
            assert time.monotonic() < until, self.log.read_text()
            time.sleep(0.02)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid  # systemd-socket-activate execs the service: the same pid

    def serving(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.serving():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


class Pool:
    """The model pool the calls reach, an SR dataset on it, and the daemon that calls."""

    def __init__(self, inst: Install, tmp: Path, server: Server | None) -> None:
        self.path = tmp / "pool.model"
        self.zfs = SharedModelZfs(self.path, pools=(POOL,))
        self.zfs.create_filesystem(f"{POOL}/p")
        self.zfs.create_filesystem(f"{POOL}/p/sr")
        self.dataset = f"{POOL}/p/sr"
        run = server.socket if server else tmp / "run" / "zfsaga" / "server.sock"
        self.env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(tmp / "state"),
                    "ZFSAGA_HOST_STATE_DIR": str(tmp / "host"),
                    "ZFSAGA_ZFS": f"model:{self.path}", "ZFSAGA_MODEL_POOLS": POOL,
                    "ZFSAGA_SOCKET": str(run), "ZFSAGA_PAUSE_DIR": str(tmp)}
        self.xapi = Daemon(inst.root, "zfsaga", self.env)
        self.tmp = tmp

    def sr(self) -> str:
        config = self.xapi.call("SR.create", uuid=str(uuid.uuid4()), name="SR",
                                description="server tests",
                                configuration={"dataset": self.dataset})
        return self.xapi.call("SR.attach", configuration=config)

    def call(self, verb: str, extra_env: dict[str, str] | None = None, cwd: Path | None = None,
             **args) -> subprocess.CompletedProcess:
        """One call as xapi makes it, with this call's own additions to the environment."""
        return subprocess.run([str(self.xapi.script(verb)), "--json"],
                              input=json.dumps({"dbg": "t", **args}), capture_output=True,
                              text=True, env={**self.xapi.env, **(extra_env or {})},
                              timeout=300, cwd=cwd)

    def start(self, verb: str, extra_env: dict[str, str] | None = None,
              **args) -> subprocess.Popen:
        """A call left running (stdin from a file: the call reads it whole at once)."""
        arguments = self.tmp / f"args-{uuid.uuid4().hex}"
        arguments.write_text(json.dumps({"dbg": "t", **args}))
        with open(arguments, "rb") as stdin:
            return subprocess.Popen([str(self.xapi.script(verb)), "--json"], stdin=stdin,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env={**self.xapi.env, **(extra_env or {})})

    def volumes(self, sr: str) -> list[str]:
        return [v["name"] for v in self.xapi.call("SR.ls", sr=sr)]

    def wait_paused(self, seconds: float = 60) -> int:
        """The pid of the process paused at its fault point (zfsaga/faults.py)."""
        paused = self.tmp / "paused"
        until = time.monotonic() + seconds
        while not paused.exists() or not paused.read_text().endswith("\n"):
            assert time.monotonic() < until, "the call never reached its pause"
            time.sleep(0.05)
        return int(paused.read_text().split()[-1])

    def go(self) -> None:
        (self.tmp / "go").write_text("go")


def run_root() -> Path:
    """Where a server's socket goes: a directory `nobody` can traverse (pytest's are 0700)."""
    return Path(tempfile.mkdtemp(prefix="zfsaga-run-"))


@pytest.fixture
def served(installed):
    root = run_root()
    server = Server(installed, root).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pool(installed, served, tmp_path) -> Pool:
    return Pool(installed, tmp_path, served)


def fallback_note(out: subprocess.CompletedProcess) -> bool:
    return "calls run without the warm server" in out.stderr


# -- the wire, spoken directly -------------------------------------------------------------------
@dataclass
class Reply:
    first: bytes  # S<pid>, V<stamp>, R<why>, or b"" (nothing)
    out: bytes = b""
    err: bytes = b""
    status: bytes = b""

    @property
    def child(self) -> int:
        return int(self.first[1:])

    @property
    def wait_status(self) -> int | None:
        for line in self.status.split(b"\n"):
            if line.startswith(b"W"):
                return int(line[1:])
        return None


def netstrings(*fields: bytes) -> bytes:
    return b"".join(b"%d:%s," % (len(f), f) for f in fields)


class Request(bytes):
    """A request's bytes, and the stdin that rides beside them as a descriptor (None: the
    call's stdin is closed)."""

    stdin: bytes | None = None


def request(stamp: bytes, verb: str, where: Path, argv=(b"--json",), env=None,
            stdin: bytes | None = b"{\"dbg\": \"t\"}", cwd: bytes = b"/",
            umask: bytes | None = b"22") -> Request:
    env = env if env is not None else {}
    items = [k.encode() + b"=" + v.encode() if isinstance(k, str) else k + b"=" + v
             for k, v in env.items()]
    body = netstrings(stamp, verb.encode(), os.fsencode(where), cwd, b"%d" % len(argv), *argv,
                      b"%d" % len(items), *items, b"-" if stdin is None else b"+",
                      *([] if umask is None else [umask]))
    out = Request(b"ZFSAGA/1 %d\n" % len(body) + body)
    out.stdin = stdin
    return out


def stdin_fd(data: bytes) -> int:
    """A descriptor reading `data` (a memory file: any size, no reader needed meanwhile)."""
    fd = os.memfd_create("stdin")
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def send_request(sock: socket.socket, payload: bytes, fds: list[int]) -> int:
    """sendmsg as plugin/entry.py does: the call's stdin (when the request says it is open)
    first, then the given descriptors; returns the bytes sent."""
    stdin = getattr(payload, "stdin", None)
    extra = [stdin_fd(stdin)] if stdin is not None else []
    try:
        carried = extra + fds
        ancillary = ([(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                       struct.pack(f"{len(carried)}i", *carried))] if carried else [])
        return sock.sendmsg([bytes(payload)], ancillary)
    finally:
        for fd in extra:
            os.close(fd)


def read_line(sock: socket.socket, seconds: float = 30) -> bytes:
    """The server's next line, past its loading word (P: the server is still loading)."""
    data = b""
    until = time.monotonic() + seconds
    while not data.endswith(b"\n") or data == b"P\n":
        if data == b"P\n":
            data = b""
        left = until - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return data
        try:
            chunk = sock.recv(1)
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk
    return data


def wire(path: Path, payload: bytes, fds: int = 2, go: bool = True,
         seconds: float = 60) -> Reply:
    """One call over the socket as plugin/entry.py makes it, with `fds` descriptors riding
    on it (the call's stdout and stderr when 2): the reply, the answer and the statuses."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    pipes = [os.pipe() for _ in range(2)]
    extra = [os.open(os.devnull, os.O_RDONLY) for _ in range(max(0, fds - 2))]
    sending = ([pipes[0][1], pipes[1][1]] + extra)[:fds]
    try:
        sent = send_request(sock, payload, sending)
        sock.sendall(payload[sent:])
    except (BrokenPipeError, ConnectionResetError):
        pass  # a refusal (R, V) closes the connection before the request is read: read it
    finally:
        for fd in [pipes[0][1], pipes[1][1]] + extra:
            os.close(fd)
    try:
        first = read_line(sock, seconds)
        reply = Reply(first)
        if not first.startswith(b"S") or not go:
            return reply
        sock.sendall(b"G")
        readers = {pipes[0][0]: "out", pipes[1][0]: "err", sock.fileno(): "status"}
        until = time.monotonic() + seconds
        while readers:
            ready = select.select(list(readers), [], [], max(0.0, until - time.monotonic()))[0]
            assert ready, f"no answer within {seconds}s: {reply}"
            for fd in ready:
                chunk = sock.recv(4096) if fd == sock.fileno() else os.read(fd, 65536)
                if not chunk:
                    del readers[fd]
                else:
                    name = readers[fd]
                    setattr(reply, name, getattr(reply, name) + chunk)
        return reply
    finally:
        sock.close()
        for fd in (pipes[0][0], pipes[1][0]):
            os.close(fd)


# -- the server's own process ---------------------------------------------------------------------
def proc_status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(key)


def children_of(pid: int) -> dict[int, str]:
    """Every process whose parent is `pid`, and its state (Z: a zombie)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            found[int(entry)] = fields[0]
    return found


def descriptors(pid: int) -> dict[int, str]:
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return found


def wait_for(what, seconds: float = 30, step: float = 0.05):
    until = time.monotonic() + seconds
    while True:
        got = what()
        if got or time.monotonic() > until:
            return got
        time.sleep(step)


def create(pool: Pool, sr: str, name: str, extra_env: dict[str, str] | None = None):
    return pool.call("Volume.create", extra_env, sr=sr, name=name, description="",
                     size=1 << 20, sharable=False)


def answer(out: subprocess.CompletedProcess):
    if out.returncode != 0:
        raise parse_error(out)
    return json.loads(out.stdout)


def zvols(pool: Pool, sr: str) -> list[str]:
    return [n for n, p in pool.zfs.list_tree(sr, ["type"]).items() if p["type"].value == "volume"]


# -- the units, and the served path ------------------------------------------------------------
def test_the_installed_units_pass_systemd_analyze_verify(installed: Install) -> None:
    units = [str(installed.units / n) for n in ("zfsaga.socket", "zfsaga.service")]
    out = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert installed.unit("zfsaga.service")["KillMode"] == "process"  # calls outlive it
    assert installed.unit("zfsaga.socket")["SocketMode"] == "0600"


@pytest.mark.parametrize("way", ["served", "fallback"])
def test_a_volume_lives_through_create_ls_destroy_both_ways(installed, tmp_path, way) -> None:
    """The same calls, through the socket-activated server and with none: the same answers;
    served, no call falls back, and the call's process is the server's child."""
    server = Server(installed, tmp_path / "run-root").start() if way == "served" else None
    try:
        pool = Pool(installed, tmp_path, server)
        if server is None:
            pool.env["ZFSAGA_SERVER"] = "0"
        sr = pool.sr()
        if server is None:
            vol = answer(create(pool, sr, "disk"))
        else:
            proc = pool.start("Volume.create", {"ZFSAGA_FAULTS": "pause@zfs:after:create"},
                              sr=sr, name="disk", description="", size=1 << 20,
                              sharable=False)
            child = pool.wait_paused()
            assert int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1]) \
                == server.pid
            pool.go()
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert "calls run without the warm server" not in err
            vol = json.loads(out)
        assert vol["name"] == "disk" and vol["virtual_size"] >= 1 << 20
        assert pool.volumes(sr) == ["disk"]
        assert answer(pool.call("Volume.destroy", sr=sr, key=vol["key"])) is None
        assert pool.volumes(sr) == [] and zvols(pool, sr) == []
        if server:
            assert server.serving() and "refused" not in server.text()
    finally:
        if server:
            server.stop()


def test_a_served_child_holds_none_of_the_servers_descriptors(pool: Pool, served: Server) -> None:
    """Fork hygiene, seen from /proc while a served call is paused mid-saga: the child holds
    neither the listening socket nor another call's connection, and its SIGCHLD is not
    ignored (waitpid works in it)."""
    sr = pool.sr()
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # another caller, stalled
    other.connect(str(served.socket))
    proc = pool.start("Volume.create", {"ZFSAGA_FAULTS": "pause@zfs:after:create"}, sr=sr,
                      name="a", description="", size=1 << 20, sharable=False)
    try:
        child = pool.wait_paused()
        server_fds = descriptors(served.pid)
        listener = server_fds[3]
        assert listener.startswith("socket:")
        theirs = set(descriptors(child).values())
        assert listener not in theirs
        # of the server's connections (the stalled caller's, this call's) only its own
        server_sockets = {d for d in server_fds.values() if d.startswith("socket:")}
        assert len(server_sockets - {listener}) >= 2, server_fds
        assert len(server_sockets & theirs) == 1, (server_fds, theirs)
        ignored = int(proc_status(child, "SigIgn"), 16)
        assert not ignored & (1 << (signal.SIGCHLD - 1))
    finally:
        pool.go()
        other.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert pool.volumes(sr) == ["a"]


# -- the server dies, the child dies -------------------------------------------------------------
def test_kill_9_of_the_server_mid_call_loses_no_call(installed, pool: Pool, served: Server) -> None:
    """The server killed while its child is mid-saga: the call completes and answers; the next
    call finds no server (systemd-socket-activate, unlike systemd, does not listen again) and
    runs in-process; a server started again serves the one after."""
    sr = pool.sr()
    proc = pool.start("Volume.create", {"ZFSAGA_FAULTS": "pause@zfs:after:create"}, sr=sr,
                      name="a", description="", size=1 << 20, sharable=False)
    child = pool.wait_paused()
    os.kill(served.pid, signal.SIGKILL)
    served.proc.wait(10)
    assert Path(f"/proc/{child}").exists()  # the call goes on
    pool.go()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["name"] == "a"
    after = create(pool, sr, "b")  # no server: in-process, noted
    assert answer(after)["name"] == "b" and fallback_note(after)
    served.start()
    again = create(pool, sr, "c")
    assert answer(again)["name"] == "c" and not fallback_note(again)
    assert served.serving()
    assert sorted(pool.volumes(sr)) == ["a", "b", "c"]


def test_kill_9_of_a_served_child_answers_the_signal_and_is_recovered(pool: Pool) -> None:
    sr = pool.sr()
    proc = pool.start("Volume.create", {"ZFSAGA_FAULTS": "pause@zfs:after:create"}, sr=sr,
                      name="a", description="", size=1 << 20, sharable=False)
    os.kill(pool.wait_paused(), signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    error = parse_error(subprocess.CompletedProcess([], 1, out, err))
    assert error.code == "SR_BACKEND_FAILURE" and "died (signal 9)" in " ".join(error.params)
    listed = pool.volumes(sr)  # the next call on the SR finishes or undoes the saga
    assert listed in ([], ["a"])
    assert len(zvols(pool, sr)) == len(listed)


def boundaries_of_one_create(pool: Pool, sr: str) -> int:
    """How many fault boundaries a Volume.create crosses (the first N past which it lives)."""
    for n in range(1, 60):
        out = create(pool, sr, f"probe{n}", {"ZFSAGA_FAULTS": f"crash@{n}"})
        if out.returncode == 0:
            return n - 1
    raise AssertionError("Volume.create crossed 60 boundaries")


def test_a_crash_at_every_point_of_a_served_saga_is_recovered(installed, pool: Pool) -> None:
    """ZFSAGA_FAULTS in the call's environment reaches the server's child; at each of the
    saga's boundaries the child dies (exit 137, as kill -9 would leave no trace); the caller
    gets the error JSON naming the death from the server's wait status; the next call on the
    SR finishes or undoes the saga, the VDI listed once at most, no zvol left unlisted."""
    sr = pool.sr()
    points = 0
    for n in range(1, 60):
        name = f"v{n}"
        out = create(pool, sr, name, {"ZFSAGA_FAULTS": f"crash@{n}"})
        if out.returncode == 0:
            break
        points += 1
        assert out.returncode == 137, (n, out.stdout, out.stderr)
        error = parse_error(out)
        assert "died (exit status 137)" in " ".join(error.params), (n, error)
        assert not fallback_note(out)
        listed = pool.volumes(sr)
        assert listed.count(name) <= 1, (n, listed)
        assert len(zvols(pool, sr)) == len(listed), (n, listed, zvols(pool, sr))
    print(f"\nVolume.create: {points} crash points, each recovered")
    assert points >= 4, points  # a create crosses journal and zfs boundaries alike
    assert active_sagas(installed, pool, sr) == []


def active_sagas(inst: Install, pool: Pool, sr: str) -> list:
    """`zfsaga --sr SR list --json`: the SR's sagas not finished nor undone."""
    cli = subprocess.run([str(inst.prefix / "sbin" / "zfsaga"), "--json", "--sr", sr, "list"],
                         capture_output=True, text=True, env=pool.xapi.env, timeout=60)
    assert cli.returncode == 0, cli.stderr
    return json.loads(cli.stdout)


# -- a stale server, no server, a caller who is not root ---------------------------------------
def test_a_call_that_starts_a_slow_loading_server_waits_for_it(installed, tmp_path) -> None:
    """Socket activation starts the server on a call, and loading takes seconds on a slow
    host (more than the entry point's START_WAIT in an emulated guest). The server tells
    such callers it is loading (P), so they wait for their child rather than run the call
    in-process."""
    from zfsaga.plugin import entry

    slow = tmp_path / "slow"
    slow.mkdir()
    load = entry.START_WAIT + 2
    (slow / "zfsaga_slow_load.py").write_text(f"import time\ntime.sleep({load})\n")
    server = Server(installed, tmp_path / "run-root")
    server.exec_start = ["/usr/bin/python3", "-c", (
        f"import sys; sys.path[:0] = [{str(installed.lib)!r}, {str(slow)!r}]\n"
        "from zfsaga.plugin import server\n"
        "server.PRELOAD = ('zfsaga_slow_load',) + server.PRELOAD\n"
        "sys.exit(server.serve())\n")]
    try:
        server.start()
        pool = Pool(installed, tmp_path, server)
        started = time.monotonic()
        first = pool.call("Plugin.Query")  # it starts the server, which loads for `load` s
        assert answer(first)["plugin"] == "zfsaga"
        assert not fallback_note(first), first.stderr[-800:]
        assert load <= time.monotonic() - started < load + 60
        out = create(pool, pool.sr(), "then")
        assert answer(out)["name"] == "then" and not fallback_note(out)
    finally:
        server.stop()


def test_a_stale_server_is_never_used(installed, tmp_path) -> None:
    """Another install laid over the same prefix (its stamp differs): the next call runs
    in-process and says so, the old server exits, and the call after is served by a server
    started anew (as the socket unit would) running the new code."""
    inst = fresh_install()  # its own: this test changes it
    server = Server(inst, tmp_path / "run-root")
    try:
        server.start()
        pool = Pool(inst, tmp_path, server)
        sr = pool.sr()
        old_stamp, old_pid = inst.stamp, server.pid
        assert not fallback_note(create(pool, sr, "before"))
        lay_other_code(inst, tmp_path / "other")
        assert inst.stamp != old_stamp
        during = create(pool, sr, "during")
        assert answer(during)["name"] == "during"
        # systemd-socket-activate closes the socket with the server: the queued call is
        # reset (under systemd it would wait for the new server), and runs here.
        assert fallback_note(during)
        server.proc.wait(10)  # the old server exits rather than serve the new code
        assert "the install changed under this server" in server.text()
        server.start()
        after = create(pool, sr, "after")
        assert answer(after)["name"] == "after" and not fallback_note(after)
        assert server.pid != old_pid and server.serving()
        status = subprocess.run([str(inst.prefix / "sbin" / "zfsaga"), "server", "status"],
                                capture_output=True, text=True, timeout=60,
                                env={**pool.xapi.env})
        assert status.returncode == 0, status.stdout + status.stderr
        assert inst.stamp.decode() in status.stdout
        assert sorted(pool.volumes(sr)) == ["after", "before", "during"]
    finally:
        server.stop()
        shutil.rmtree(inst.root, ignore_errors=True)


def lay_other_code(inst: Install, scratch: Path) -> None:
    """`make install` of a checkout whose code differs (one comment) over the same prefix."""
    keep = {"tools", "pyproject.toml", "packaging", *("sagas", "steps", "compensations",
                                                      "plugin", "state", "zfsaga")}
    scratch.mkdir()
    for name in keep:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, scratch / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, scratch / name)
    init = scratch / "zfsaga" / "__init__.py"
    init.write_text(init.read_text() + "\n# another install of zfsaga\n")
    out = subprocess.run([sys.executable, str(scratch / "tools" / "install.py"), "install",
                          "--destdir", "/", "--prefix", str(inst.prefix)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_no_socket_runs_in_process_and_notes_it_once(installed, tmp_path) -> None:
    """No server: the call runs in-process and says so once; a server that starts clears the
    note (its own run directory's, wherever its socket is), so the next outage is told."""
    root = run_root()
    server = Server(installed, root)  # laid out, not listening
    try:
        pool = Pool(installed, tmp_path, server)
        first = pool.call("SR.create", uuid=str(uuid.uuid4()), name="SR", description="",
                          configuration={"dataset": pool.dataset})
        assert answer(first) and fallback_note(first)
        assert "no server answers on" in first.stderr
        second = pool.call("Plugin.Query")
        assert answer(second)["plugin"] == "zfsaga" and not fallback_note(second)
        server.start()
        served_call = pool.call("Plugin.Query")
        assert answer(served_call) and not fallback_note(served_call)
        server.stop()
        server.socket.unlink()  # the same outage as the first: no socket at all
        outage = pool.call("Plugin.Query")
        assert answer(outage)["plugin"] == "zfsaga" and fallback_note(outage), outage.stderr
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def as_nobody(work) -> object:
    """Run `work()` in a forked child as uid/gid 65534; its result (pickled back)."""
    import pickle

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = work()
        except BaseException as exc:  # noqa: BLE001 - carried back to the test
            result = exc
        os.write(w, pickle.dumps(result))
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return pickle.loads(data)


def test_a_caller_who_is_not_root_is_refused_and_falls_back(installed, pool: Pool,
                                                            served: Server) -> None:
    """The socket is 0600 (SocketMode=, which systemd applies: here the test does): nobody's
    connect is EACCES. Opened to all for the test, SO_PEERCRED refuses uid 65534 (R, logged).
    And the entry point run as nobody still answers, in-process."""
    answer(pool.call("Plugin.Query"))  # the server is up (activated by a root call)
    served.socket.chmod(int(installed.unit("zfsaga.socket")["SocketMode"], 8))

    def connect() -> object:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(served.socket))
            return "connected"
        except OSError as exc:
            return exc.errno
        finally:
            s.close()

    import errno

    assert as_nobody(connect) == errno.EACCES
    served.socket.chmod(0o666)
    stamp = installed.stamp
    refused = as_nobody(lambda: wire(served.socket, request(stamp, "Plugin.Query",
                                                            pool.xapi.dir)).first)
    assert refused.startswith(b"R"), refused
    assert "refused a call from uid 65534" in served.text()

    def call_as_nobody() -> object:
        # arguments larger than the socket's buffer: the refusal comes before they are sent
        big = json.dumps({"dbg": "x" * (1 << 19)})
        out = subprocess.run([str(pool.xapi.script("Plugin.Query")), "--json"], input=big,
                             capture_output=True, text=True, cwd="/",
                             env={"PATH": "/usr/bin:/bin", "ZFSAGA_SYSLOG": "0",
                                  "ZFSAGA_SOCKET": str(served.socket)}, timeout=120)
        return out.returncode, out.stdout, out.stderr

    code, out, err = as_nobody(call_as_nobody)
    assert code == 0 and json.loads(out)["plugin"] == "zfsaga", err
    assert "refused this caller" in err
    assert served.serving()


def test_64_parallel_calls_all_answer_correctly(pool: Pool, served: Server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sr = pool.sr()

    def one(i: int):
        if i % 2:
            return "stat", answer(pool.call("SR.stat", sr=sr))
        return "create", answer(create(pool, sr, f"p{i}"))

    with ThreadPoolExecutor(64) as workers:
        results = list(workers.map(one, range(64)))
    assert [r["name"] for k, r in results if k == "create"] == [f"p{i}" for i in range(0, 64, 2)]
    assert all(r["name"] == "SR" for k, r in results if k == "stat")
    assert sorted(pool.volumes(sr)) == sorted(f"p{i}" for i in range(0, 64, 2))
    assert served.serving() and "refused" not in served.text()
    assert wait_for(lambda: not children_of(served.pid), 30)  # every child reaped


# -- the server's own process over many calls -----------------------------------------------------
def test_10000_sequential_calls_keep_the_server_flat(installed, pool: Pool, served: Server) -> None:
    """Spoken directly on the wire (no interpreter per call): Plugin.query 10,000 times. The
    server's memory, descriptors and children at the start and the end: flat, no zombie."""
    payload = request(installed.stamp, "Plugin.Query", pool.xapi.dir,
                      env={"PATH": "/usr/bin:/bin", "ZFSAGA_SYSLOG": "0"})

    def one() -> None:
        reply = wire(served.socket, payload)
        assert reply.first.startswith(b"S") and reply.wait_status == 0, reply
        assert reply.out.startswith(b'{"plugin": "zfsaga"'), reply

    answer(pool.call("Plugin.Query"))  # activated
    for _ in range(50):
        one()  # warm: the first calls settle the allocator

    def measure() -> tuple[int, int, dict[int, str]]:
        return (int(proc_status(served.pid, "VmRSS").split()[0]), len(descriptors(served.pid)),
                children_of(served.pid))

    rss0, fds0, kids0 = measure()
    start = time.monotonic()
    for _ in range(10_000):
        one()
    took = time.monotonic() - start
    wait_for(lambda: not children_of(served.pid), 10)
    rss1, fds1, kids1 = measure()
    print(f"\n10,000 calls in {took:.1f}s; RSS {rss0} -> {rss1} kB; fds {fds0} -> {fds1}; "
          f"children {kids0} -> {kids1}")
    assert fds1 == fds0 and kids1 == {} and kids0 == {}
    assert rss1 - rss0 < 4 * 1024, (rss0, rss1)


# -- settings per call, and a parent that holds nothing a child must not share ------------------
def test_settings_come_from_each_calls_environment_and_directory(pool: Pool, served: Server,
                                                                tmp_path) -> None:
    """The server's environment is not the call's: a setting given in one call and not the
    next applies to that call alone (log level, deadline, faults), and so does the working
    directory (a model named relative to it)."""
    sr = pool.sr()
    quiet = create(pool, sr, "q1", {"ZFSAGA_LOG_LEVEL": "WARNING"})
    assert answer(quiet) and " INFO " not in quiet.stderr
    loud = create(pool, sr, "l1")
    assert answer(loud) and "saga succeeded" in loud.stderr
    assert " INFO " not in create(pool, sr, "q2", {"ZFSAGA_LOG_LEVEL": "WARNING"}).stderr

    failed = create(pool, sr, "f1", {"ZFSAGA_FAULTS": "fail:create_zvol:permanent"})
    assert failed.returncode == 1 and "injected permanent failure" in failed.stdout
    assert answer(create(pool, sr, "f2"))["name"] == "f2"

    # A deadline in one call: answered Busy naming the child's pid, which goes on.
    proc = pool.start("Volume.create", {"ZFSAGA_FAULTS": "pause@zfs:after:create",
                                        "ZFSAGA_CALL_DEADLINE": "2"},
                      sr=sr, name="d1", description="", size=1 << 20, sharable=False)
    child = pool.wait_paused()
    out, err = proc.communicate(timeout=30)
    busy = parse_error(subprocess.CompletedProcess([], proc.returncode, out, err))
    assert busy.code == "SR_BACKEND_FAILURE" and busy.name == "Busy", busy
    assert f"in process {child}" in " ".join(busy.params)
    assert Path(f"/proc/{child}").exists()
    pool.go()
    assert wait_for(lambda: "d1" in pool.volumes(sr), 30)  # it went on, and finished
    (pool.tmp / "go").unlink()
    (pool.tmp / "paused").unlink()
    # ... and not in the next: paused past 2 s, it still answers with its result.
    proc = pool.start("Volume.create", {"ZFSAGA_FAULTS": "pause@zfs:after:create"},
                      sr=sr, name="d2", description="", size=1 << 20, sharable=False)
    pool.wait_paused()
    time.sleep(3)
    pool.go()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and json.loads(out)["name"] == "d2", (out, err)

    # The working directory: ZFSAGA_ZFS names a model relative to it.
    here, there = tmp_path / "here", tmp_path / "there"
    for d in (here, there):
        d.mkdir()
        SharedModelZfs(d / "pool.model", pools=(POOL,))
    relative = {"ZFSAGA_ZFS": "model:pool.model"}
    SharedModelZfs(here / "pool.model", pools=(POOL,)).create_filesystem(f"{POOL}/mine")
    probe_here = pool.call("SR.probe", relative, cwd=here,
                           configuration={"dataset": f"{POOL}/mine"})
    probe_there = pool.call("SR.probe", relative, cwd=there,
                            configuration={"dataset": f"{POOL}/mine"})
    assert probe_here.returncode == 0, probe_here.stdout + probe_here.stderr
    assert probe_there.returncode != 0, probe_there.stdout
    assert not fallback_note(probe_here) and not fallback_note(probe_there)


PARENT_PROBE = """
import json, gc, sqlite3, threading
from zfsaga.plugin import server
server.preload()
import zfsaga.log
from libzfs_core import _libzfs_core
import os
print(json.dumps({
    "configured": zfsaga.log._configured.cache_info().currsize,
    "threads": threading.active_count(),
    "lzc_inited": vars(_libzfs_core._lib)["_inited"],
    "connections": sum(isinstance(o, sqlite3.Connection) for o in gc.get_objects()),
    "files": sorted(os.readlink("/proc/self/fd/" + fd) for fd in os.listdir("/proc/self/fd")
                    if int(fd) > 2 and os.path.exists("/proc/self/fd/" + fd)),
}))
"""


def test_the_server_parent_opens_no_handle_logger_connection_or_thread(
        pool: Pool, served: Server) -> None:
    """What a fork would copy into every child: after preload, loguru unconfigured by zfsaga,
    libzfs_core's handle unopened (its library loaded), no SQLite connection, one thread; and
    the running server, after calls, still one thread holding no file of the journal's."""
    out = subprocess.run([sys.executable, "-c", PARENT_PROBE], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["configured"] == 0 and seen["threads"] == 1, seen
    assert seen["lzc_inited"] is False and seen["connections"] == 0, seen
    assert not [f for f in seen["files"] if f.startswith("/") and not f.startswith("/proc")], seen
    sr = pool.sr()
    answer(create(pool, sr, "a"))
    assert proc_status(served.pid, "Threads") == "1"
    held = descriptors(served.pid).values()
    assert not [f for f in held if f.startswith("/") and f not in ("/dev/null",)
                and not f.endswith("server.log")], held


# -- the adversary: what a caller can send, and what can happen to it ---------------------------
def raw_call(pool: Pool, verb: str, argv: list[bytes], stdin, env_extra: dict[bytes, bytes],
             served: bool) -> subprocess.CompletedProcess:
    env = {k.encode(): v.encode() for k, v in pool.xapi.env.items()}
    env.update(env_extra)
    if not served:
        env[b"ZFSAGA_SERVER"] = b"0"
    kwargs = {"input": stdin} if isinstance(stdin, bytes) else {"preexec_fn": lambda: os.close(0)}
    return subprocess.run([os.fsencode(pool.xapi.script(verb)), *argv], capture_output=True,
                          env=env, timeout=120, **kwargs)


ODD_INPUTS = {
    "stdin closed": ([b"--json"], None, {}),
    "stdin over 1 MiB": ([b"--json"], b'{"dbg": "' + b"x" * (1 << 20) + b'"}', {}),
    "stdin not UTF-8": ([b"--json"], b'{"dbg": "\xff\xfe"}', {}),
    "argv not UTF-8": ([b"--json\xff"], b'{"dbg": "t"}', {}),
    "env not UTF-8": ([b"--json"], b'{"dbg": "t"}', {b"ZFSAGA_ODD\xff": b"\xfe\xff",
                                                    b"LANG": b"C.\xff"}),
    "stdin empty": ([b"--json"], b"", {}),
}


@pytest.mark.parametrize("case", sorted(ODD_INPUTS))
def test_odd_input_is_answered_served_as_in_process(pool: Pool, served: Server, case) -> None:
    """Whatever xapi (or anyone) hands the entry point, the served call answers exactly as the
    in-process one does: the same bytes on stdout, the same exit status."""
    argv, stdin, env = ODD_INPUTS[case]
    here = raw_call(pool, "Plugin.Query", argv, stdin, env, served=False)
    there = raw_call(pool, "Plugin.Query", argv, stdin, env, served=True)
    assert b"calls run without the warm server" not in there.stderr, there.stderr
    assert (there.returncode, there.stdout) == (here.returncode, here.stdout), (here, there)
    assert served.serving()


def test_a_caller_that_connects_and_never_sends_stalls_no_one(installed, pool: Pool,
                                                              served: Server) -> None:
    answer(pool.call("Plugin.Query"))
    stalled = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(4)]
    for s in stalled:
        s.connect(str(served.socket))
    try:
        start = time.monotonic()
        out = pool.call("Plugin.Query")
        assert answer(out)["plugin"] == "zfsaga" and not fallback_note(out)
        assert time.monotonic() - start < 10
    finally:
        for s in stalled:
            s.close()


@pytest.mark.parametrize("what", ["garbage", "bad magic", "size too large", "bad netstring",
                                  "too few fields", "no fds", "one fd", "five fds",
                                  "argc past the end", "another stamp", "truncated",
                                  "no go", "umask not octal", "umask too wide", "no umask"])
def test_a_malformed_request_runs_nothing(installed, pool: Pool, served: Server, tmp_path,
                                          what: str) -> None:
    """A request not as the wire says gets no S (nothing runs: the model's pool is untouched),
    a V for another stamp; the server serves the next call."""
    sr = pool.sr()
    before = pool.zfs.list_tree(POOL, ["guid"]).keys()
    args = json.dumps({"dbg": "t", "sr": sr, "name": "x", "description": "", "size": 1 << 20,
                       "sharable": False}).encode()
    env = dict(pool.env, PATH="/usr/bin:/bin")
    good = request(installed.stamp, "Volume.create", pool.xapi.dir, env=env, stdin=args)
    fds = 2
    payload = {
        "garbage": b"\x00\xff" * 40 + b"\n",
        "bad magic": b"ZFSAGA/2 5\n" + good.split(b"\n", 1)[1],
        "size too large": b"ZFSAGA/1 %d\n" % (64 << 20),
        "bad netstring": b"ZFSAGA/1 9\n3:abcd,xx",
        "too few fields": b"ZFSAGA/1 %d\n" % len(netstrings(installed.stamp, b"Volume.create"))
                          + netstrings(installed.stamp, b"Volume.create"),
        "argc past the end": b"ZFSAGA/1 %d\n" % len(netstrings(installed.stamp, b"V", b"/", b"/",
                                                                b"9", b"--json"))
                             + netstrings(installed.stamp, b"V", b"/", b"/", b"9", b"--json"),
        "another stamp": request(b"0" * 32, "Volume.create", pool.xapi.dir, env=env, stdin=args),
        "truncated": good[:-20],
        "umask not octal": request(installed.stamp, "Volume.create", pool.xapi.dir, env=env,
                                   stdin=args, umask=b"99"),
        "umask too wide": request(installed.stamp, "Volume.create", pool.xapi.dir, env=env,
                                  stdin=args, umask=b"7777"),
        "no umask": request(installed.stamp, "Volume.create", pool.xapi.dir, env=env,
                            stdin=args, umask=None),
    }.get(what, good)
    fds = {"no fds": 0, "one fd": 1, "five fds": 5}.get(what, 2)
    if what == "truncated":  # then the client goes away
        reply = wire_truncated(served.socket, payload)
    else:  # "no go": the client goes away after S, as one that gave up waiting would
        reply = wire(served.socket, payload, fds=fds, seconds=45, go=what != "no go")
    if what == "another stamp":
        assert reply.first == b"V" + installed.stamp + b"\n", reply
    elif what == "no go":
        assert reply.first.startswith(b"S"), reply
    else:
        assert reply.first in (b"", b"W0\n"), reply  # no S: the child ran nothing
    assert wait_for(lambda: not children_of(served.pid), 45)  # each child has exited
    assert pool.zfs.list_tree(POOL, ["guid"]).keys() == before
    assert answer(pool.call("Plugin.Query"))["plugin"] == "zfsaga"
    assert pool.volumes(sr) == []


def wire_truncated(path: Path, payload: bytes) -> Reply:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    r, w = os.pipe()
    send_request(sock, payload, [w, w])
    os.close(w)
    sock.shutdown(socket.SHUT_WR)
    first = read_line(sock, 30)
    sock.close()
    os.close(r)
    return Reply(first)


def test_a_caller_killed_mid_call_does_not_kill_its_saga(installed, pool: Pool,
                                                         served: Server) -> None:
    """xapi's process killed after the go byte: the child finishes its saga (its writes to the
    gone caller's pipes fail quietly, no SIGPIPE), the journal holds nothing unfinished."""
    sr = pool.sr()
    # paused before its first ZFS call: its later steps log lines still to be written
    proc = pool.start("Volume.create", {"ZFSAGA_FAULTS": "pause@zfs:before:create"}, sr=sr,
                      name="orphan", description="", size=1 << 20, sharable=False)
    child = pool.wait_paused()
    proc.kill()
    proc.communicate(timeout=30)
    pool.go()
    assert wait_for(lambda: not Path(f"/proc/{child}").exists()
                    or Path(f"/proc/{child}/stat").read_text().split(") ")[1][0] == "Z", 30)
    assert active_sagas(installed, pool, sr) == []  # finished by the child itself
    assert pool.volumes(sr) == ["orphan"] and len(zvols(pool, sr)) == 1


def test_sigterm_stops_the_server_but_not_the_call_in_flight(pool: Pool, served: Server) -> None:
    sr = pool.sr()
    proc = pool.start("Volume.create", {"ZFSAGA_FAULTS": "pause@zfs:after:create"}, sr=sr,
                      name="late", description="", size=1 << 20, sharable=False)
    child = pool.wait_paused()
    start = time.monotonic()
    served.proc.terminate()
    served.proc.wait(10)
    assert time.monotonic() - start < 4.5  # woken at once, not at the select's 5 s
    assert Path(f"/proc/{child}").exists()
    pool.go()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and json.loads(out)["name"] == "late", (out, err)


def test_server_status_names_the_servers_stamp(installed, pool: Pool, served: Server) -> None:
    """`zfsaga server status` against a server of this install: exit 0 and its stamp, every
    time (the server's W may come in the same read as its V)."""
    answer(pool.call("Plugin.Query"))
    for _ in range(12):
        status = subprocess.run([str(installed.prefix / "sbin" / "zfsaga"), "server", "status"],
                                capture_output=True, text=True, timeout=60, env=pool.xapi.env)
        assert status.returncode == 0 and installed.stamp.decode() in status.stdout, status.stdout
    served.stop()
    down = subprocess.run([str(installed.prefix / "sbin" / "zfsaga"), "server", "status"],
                          capture_output=True, text=True, timeout=60, env=pool.xapi.env)
    assert down.returncode == 1 and "no server answers" in down.stdout, down.stdout


def test_a_child_whose_caller_closed_its_pipes_finishes_and_exits_0(installed, pool: Pool,
                                                                   served: Server) -> None:
    """The wait status says how the child ended: its caller's pipes closed mid-saga (as when
    xapi's process dies), it writes its log and answer into them, and still exits 0, not by
    SIGPIPE."""
    sr = pool.sr()
    args = json.dumps({"dbg": "t", "sr": sr, "name": "deaf", "description": "",
                       "size": 1 << 20, "sharable": False}).encode()
    env = dict(pool.env, PATH="/usr/bin:/bin", ZFSAGA_FAULTS="pause@zfs:before:create")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(served.socket))
    (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
    payload = request(installed.stamp, "Volume.create", pool.xapi.dir, env=env, stdin=args)
    send_request(sock, payload, [out_w, err_w])
    for fd in (out_w, err_w):
        os.close(fd)
    assert read_line(sock).startswith(b"S")
    sock.sendall(b"G")
    pool.wait_paused()
    for fd in (out_r, err_r):
        os.close(fd)
    pool.go()
    status = b""
    sock.settimeout(60)
    while chunk := sock.recv(256):
        status += chunk
    sock.close()
    assert status.split() == [b"X0", b"W0"], status
    assert pool.volumes(sr) == ["deaf"] and active_sagas(installed, pool, sr) == []


def test_a_server_started_with_sigchld_ignored_still_reports_and_reaps(installed, pool: Pool,
                                                                       tmp_path) -> None:
    """A SIG_IGN'd SIGCHLD survives exec and would make the kernel reap children itself
    (no wait status for the caller, waitpid failing in the children): the server's own
    disposition must win."""
    root = run_root()
    server = Server(installed, root)
    log = open(server.log, "ab")
    server.proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", str(server.socket), *server.exec_start],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"},
        preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN))
    log.close()
    try:
        assert wait_for(lambda: b"Listening on" in server.log.read_bytes(), 10)
        payload = request(installed.stamp, "Plugin.Query", pool.xapi.dir,
                          env={"PATH": "/usr/bin:/bin", "ZFSAGA_SYSLOG": "0"})
        for _ in range(3):
            reply = wire(server.socket, payload)
            assert reply.status.split() == [b"X0", b"W0"], reply
        assert wait_for(lambda: not children_of(server.pid), 10)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


UNRUN = 75  # plugin/server.py: a child that never got its go byte exits with it, unrun


def test_a_call_whose_child_gave_up_before_go_runs_in_process(installed, tmp_path) -> None:
    """A client stalled between S and G past the child's wait (a loaded host): the child
    exits unrun (no X, its wait status UNRUN), and the client runs the call itself, once,
    instead of answering nothing with exit 0. A stand-in server plays the child's part."""
    import threading

    path = tmp_path / "run" / "server.sock"
    path.parent.mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve_one() -> None:
        conn, _ = listener.accept()
        _, ancdata, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(8))
        for _, _, data in ancdata:
            for fd in struct.unpack("2i", data[:8]):
                os.close(fd)
        conn.sendall(b"S4242\n")
        conn.recv(1)
        conn.sendall(b"W%d\n" % (UNRUN << 8))
        conn.close()

    stand_in = threading.Thread(target=serve_one, daemon=True)
    stand_in.start()
    try:
        pool = Pool(installed, tmp_path, None)
        pool.xapi.env["ZFSAGA_SOCKET"] = str(path)
        out = pool.call("Plugin.Query")
        assert answer(out)["plugin"] == "zfsaga", (out.stdout, out.stderr)
        assert fallback_note(out) and "gave up" in out.stderr
    finally:
        stand_in.join(10)
        listener.close()


def test_a_child_that_never_gets_go_exits_unrun(installed, pool: Pool, served: Server) -> None:
    """The server's half: S sent, no G within the child's wait: it exits UNRUN, sends no X,
    and the pool is untouched (the client may run the call itself)."""
    sr = pool.sr()
    args = json.dumps({"dbg": "t", "sr": sr, "name": "late", "description": "",
                       "size": 1 << 20, "sharable": False}).encode()
    env = dict(pool.env, PATH="/usr/bin:/bin")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(served.socket))
    r, w = os.pipe()
    payload = request(installed.stamp, "Volume.create", pool.xapi.dir, env=env, stdin=args)
    send_request(sock, payload, [w, w])
    os.close(w)
    assert read_line(sock).startswith(b"S")
    sock.settimeout(90)
    status = b""
    while chunk := sock.recv(256):  # no G: the child waits out its 30 s, then gives up
        status += chunk
    sock.close()
    os.close(r)
    assert status == b"W%d\n" % (UNRUN << 8), status
    assert pool.volumes(sr) == []


# -- adversarial review (issue 20) -------------------------------------------------------------
def test_a_server_that_accepts_nothing_costs_no_more_than_the_start_wait(installed,
                                                                        tmp_path) -> None:
    """A server that is there but accepts nothing (stopped with SIGSTOP, stuck, its listen
    queue full): a blocking connect to it waits forever, past any deadline, and xapi with it.
    The call must fall back (answer, in-process, with the note) within the entry point's
    START_WAIT at most."""
    pool = Pool(installed, tmp_path, None)
    path = Path(pool.env["ZFSAGA_SOCKET"])
    path.parent.mkdir(parents=True)
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.bind(str(path))
    stuck.listen(0)  # one connection queued fills it
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    filler.connect(str(path))
    try:
        start = time.monotonic()
        out = subprocess.run([str(pool.xapi.script("Plugin.Query")), "--json"],
                             input='{"dbg": "t"}', capture_output=True, text=True,
                             env=pool.xapi.env, timeout=60)
        took = time.monotonic() - start
        assert answer(out)["plugin"] == "zfsaga" and fallback_note(out), out.stderr
        assert took < 10 + 20, took  # START_WAIT, then the call in-process
    finally:
        filler.close()
        stuck.close()


@pytest.mark.parametrize("way", ["served", "fallback"])
def test_a_call_creates_its_files_under_its_callers_umask(installed, tmp_path, way) -> None:
    """The child is what the per-call process is: the files a call makes (the journal, its
    state) carry its caller's umask, not the server's (systemd's 0022, or whoever started it).
    A caller with umask 0077 gets no file any other user can read, both ways."""
    server = Server(installed, tmp_path / "run-root").start() if way == "served" else None
    try:
        pool = Pool(installed, tmp_path, server)
        if server is None:
            pool.env["ZFSAGA_SERVER"] = "0"
        out = subprocess.run([str(pool.xapi.script("SR.create")), "--json"],
                             input=json.dumps({"dbg": "t", "uuid": str(uuid.uuid4()),
                                               "name": "SR", "description": "",
                                               "configuration": {"dataset": pool.dataset}}),
                             capture_output=True, text=True, env=pool.xapi.env, timeout=120,
                             preexec_fn=lambda: os.umask(0o077))
        answer(out)
        assert not (server and fallback_note(out)), out.stderr
        made = [p for top in ("state", "host") for p in (tmp_path / top).rglob("*")]
        assert made, "the call made no file: nothing to check"
        loose = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777)
                 for p in made if p.stat().st_mode & 0o077}
        assert not loose, loose
    finally:
        if server:
            server.stop()


def test_server_status_fails_for_a_server_that_serves_no_call(tmp_path) -> None:
    """A server without a stamp (run from a checkout, its STAMP gone) answers every call V and
    serves none: every call runs in-process. `zfsaga server status` of the same tree must say
    so and exit 1, not 0 ("running this install")."""
    sock = run_root() / "zfsaga" / "server.sock"
    env = {**os.environ, "ZFSAGA_SYSLOG": "0"}
    env.pop("ZFSAGA_SOCKET", None)
    cli = [sys.executable, "-m", "zfsaga.cli"]
    assert not (ROOT / "STAMP").exists()
    proc = subprocess.Popen([*cli, "serve", "--socket", str(sock)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: sock.exists(), 60)
        out = subprocess.run([*cli, "server", "status", "--socket", str(sock)], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "no stamp" in out.stdout, out.stdout
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(sock.parent.parent, ignore_errors=True)


def test_the_fallback_note_never_follows_a_symlink(installed, tmp_path) -> None:
    """The entry point runs as root and writes its one-time note beside the socket. A link
    planted there (a run directory anyone could write to: ZFSAGA_SOCKET under /tmp) must not
    make root write through it: the file it points at is untouched, and the call answers."""
    pool = Pool(installed, tmp_path, None)
    run_dir = Path(pool.env["ZFSAGA_SOCKET"]).parent
    run_dir.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (run_dir / "fallback").symlink_to(victim)
    out = pool.call("Plugin.Query")
    assert answer(out)["plugin"] == "zfsaga" and fallback_note(out), out.stderr
    assert victim.read_text() == "precious\n"


def test_a_served_call_logs_in_its_callers_time_zone(pool: Pool, served: Server) -> None:
    """TZ is a setting of the call's environment like any other: the log lines' times are
    the caller's local time, served as in-process (the server's zone is systemd's)."""
    import re
    from datetime import datetime, timedelta, timezone

    sr = pool.sr()
    hours = {}
    for zone, offset in (("UTC0", 0), ("XXX-11", 11)):  # POSIX: XXX-11 is UTC+11
        out = create(pool, sr, f"tz{offset}", {"TZ": zone})
        answer(out)
        assert not fallback_note(out), out.stderr
        stamp = re.search(r"^(\d{4}-\d\d-\d\d \d\d:\d\d):\d\d\.\d{3} ", out.stderr, re.M)
        assert stamp, out.stderr
        want = datetime.now(timezone(timedelta(hours=offset)))
        got = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=want.tzinfo)
        hours[zone] = abs((want - got).total_seconds())
    assert all(seconds < 300 for seconds in hours.values()), hours


def test_a_fork_that_fails_refuses_one_call_and_keeps_the_server(tmp_path, monkeypatch) -> None:
    """fork() fails when the service's cgroup is at its TasksMax, or memory is short (EAGAIN,
    ENOMEM): that call is not served (its client sees the connection close and runs it
    in-process), and the server goes on serving: an exception out of the accept loop would
    end it for every call until the socket starts it anew."""
    from zfsaga.plugin import server as server_mod

    path = str(tmp_path / "s.sock")
    listener = server_mod.bind(path)
    listener.setblocking(False)
    srv = server_mod.Server(listener, str(tmp_path))
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(server_mod.os, "fork", no_fork)
    monkeypatch.setattr(server_mod.time, "sleep", lambda s: None)
    try:
        srv._fork(srv._take())  # raised, before the fix: out of run()'s loop, the server gone
        assert not srv.stopping and srv.children == {}
        client.settimeout(5)
        assert client.recv(64) == b""  # closed: the client runs the call in-process
    finally:
        client.close()
        listener.close()


def test_a_server_whose_loaded_files_changed_on_disk_serves_no_call(tmp_path,
                                                                    monkeypatch) -> None:
    """The stamp is zfsaga's code; what the server loaded besides it (the interpreter and its
    library, pyzfs and ZFS's libraries, loguru...) is upgraded by the host's package manager,
    which replaces the files. A server still running the old ones would fork children that
    mix them with the new files they import: like a stale stamp, it exits without accepting,
    and the socket starts the new code for the call left queued."""
    import types

    from zfsaga.plugin import server as server_mod

    dep = tmp_path / "dep.py"
    dep.write_text("x = 1\n")
    fake = types.ModuleType("zfsaga_test_dep")
    fake.__file__ = str(dep)
    monkeypatch.setitem(sys.modules, "zfsaga_test_dep", fake)
    watched = getattr(server_mod, "WATCHED_MODULES", ())
    monkeypatch.setattr(server_mod, "WATCHED_MODULES", (*watched, "zfsaga_test_dep"),
                        raising=False)
    path = str(tmp_path / "s.sock")
    listener = server_mod.bind(path)
    listener.setblocking(False)
    srv = server_mod.Server(listener, str(tmp_path))
    marks = getattr(srv, "marks", {})
    assert str(dep) in marks and os.path.realpath(sys.executable) in marks, marks
    fresh = tmp_path / "dep.new"
    fresh.write_text("x = 2\n")
    os.replace(fresh, dep)  # as rpm and dpkg lay a package's new files
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)}
    try:
        assert srv.run() == 0 and srv.served == 0
        listener.setblocking(True)
        listener.settimeout(5)
        queued, _ = listener.accept()  # the call is still there, for the next server
        queued.close()
    finally:
        signal.set_wakeup_fd(-1)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        client.close()
        listener.close()


def test_waiting_for_a_server_counts_against_the_calls_deadline(installed, tmp_path) -> None:
    """A server that takes calls into its queue but never starts them (stuck: its accept loop
    wedged, or its start failing under systemd while the socket holds the calls): the call runs
    in-process, and its answer still comes within ZFSAGA_CALL_DEADLINE, the wait for the
    server included (before, START_WAIT came on top of the deadline)."""
    pool = Pool(installed, tmp_path, None)
    path = Path(pool.env["ZFSAGA_SOCKET"])
    path.parent.mkdir(parents=True)
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.bind(str(path))
    stuck.listen(16)  # room in the queue: the connect succeeds, nothing ever answers
    try:
        start = time.monotonic()
        out = subprocess.run([str(pool.xapi.script("Plugin.Query")), "--json"],
                             input='{"dbg": "t"}', capture_output=True, text=True,
                             env={**pool.xapi.env, "ZFSAGA_CALL_DEADLINE": "4"}, timeout=60)
        took = time.monotonic() - start
        assert answer(out)["plugin"] == "zfsaga" and fallback_note(out), out.stderr
        assert took < 4 + 1.5, took  # the deadline, and an interpreter's exit
    finally:
        stuck.close()


def test_a_loading_server_never_holds_a_call_past_its_deadline(installed, tmp_path) -> None:
    """A server that says it is loading (P) and then loads for longer than the call's deadline
    (a slow host, a stuck import): the call's answer still comes within ZFSAGA_CALL_DEADLINE.
    Before, P bought LOAD_WAIT (120 s) whatever the deadline, and xapi waited past it."""
    import threading

    pool = Pool(installed, tmp_path, None)
    path = Path(pool.env["ZFSAGA_SOCKET"])
    path.parent.mkdir(parents=True)
    loading = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    loading.bind(str(path))
    loading.listen(16)
    greeted: list[socket.socket] = []

    def greet() -> None:  # what warm_up does for each caller, and then nothing more
        with contextlib.suppress(OSError):
            conn, _ = loading.accept()
            conn.sendall(b"P\n")
            greeted.append(conn)

    greeter = threading.Thread(target=greet, daemon=True)
    greeter.start()
    try:
        start = time.monotonic()
        try:
            out = subprocess.run([str(pool.xapi.script("Plugin.Query")), "--json"],
                                 input='{"dbg": "t"}', capture_output=True, text=True,
                                 env={**pool.xapi.env, "ZFSAGA_CALL_DEADLINE": "8"}, timeout=40)
        except subprocess.TimeoutExpired:
            pytest.fail("the call was still waiting for the loading server 40 s in, "
                        "past its 8 s deadline")
        took = time.monotonic() - start
        assert greeted, "the call never reached the server"
        assert answer(out)["plugin"] == "zfsaga" and fallback_note(out), out.stderr
        assert took < 8 + 1.5, took  # the deadline, and an interpreter's exit
    finally:
        loading.close()
        for conn in greeted:
            conn.close()


@pytest.mark.parametrize("what", ["stamp", "dependency"])
def test_what_changes_on_disk_while_the_server_loads_serves_no_call(tmp_path, monkeypatch,
                                                                     what) -> None:
    """An install (the stamp) or a package upgrade (a file the server loaded) lands while the
    server is still loading: what it loaded is a mix of old and new. It serves no call: the
    callers it greeted (P) meanwhile are closed before their S (they run in-process), and it
    exits, as it does when the change comes once it serves. Before, the marks were taken
    after the load and the stamp never read again before the greeted callers were forked."""
    import types

    from zfsaga.plugin import server as server_mod

    (tmp_path / "STAMP").write_text("old\n")
    dep = tmp_path / "dep.py"
    dep.write_text("x = 1\n")
    monkeypatch.setattr(server_mod, "WATCHED_MODULES",
                        (*server_mod.WATCHED_MODULES, "zfsaga_test_dep"))

    def preload(between) -> None:
        between()
        fake = types.ModuleType("zfsaga_test_dep")  # imported: its file is the old one
        fake.__file__ = str(dep)
        monkeypatch.setitem(sys.modules, "zfsaga_test_dep", fake)
        between()
        if what == "stamp":
            (tmp_path / "STAMP").write_text("new\n")  # install.py writes it last
        else:
            fresh = tmp_path / "dep.new"
            fresh.write_text("x = 2\n")
            os.replace(fresh, dep)
        between()

    monkeypatch.setattr(server_mod, "preload", preload)
    path = str(tmp_path / "s.sock")
    listener = server_mod.bind(path)
    listener.setblocking(False)
    srv = server_mod.Server(listener, str(tmp_path))
    forked: list[socket.socket] = []

    def fork(conn: socket.socket) -> None:  # no fork in pytest's process: note it, stop
        forked.append(conn)
        srv.stopping = True

    monkeypatch.setattr(srv, "_fork", fork)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)}
    try:
        srv.warm_up()
        assert srv.run() == 0
        assert forked == [], f"the server forked a child for a call after a {what} change"
        client.settimeout(5)
        assert client.recv(64) == b"P\n"
        assert client.recv(64) == b""  # closed before any S: the call runs in-process
    finally:
        signal.set_wakeup_fd(-1)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        client.close()
        for conn in forked:
            conn.close()
        listener.close()


@pytest.mark.parametrize("what", ["missing", "directory", "fifo", "huge", "not-utf8", "blank"])
def test_any_stamp_file_is_read_at_once_by_client_and_server(tmp_path, what) -> None:
    """The stamp is read by every call's entry point and by the server on every accept (one
    function since both share entry.py's): whatever is at STAMP, the read answers at once,
    empty for what is no stamp (no call is then served). A FIFO there blocked open() for
    ever: every call, and the server's start, hung past any deadline."""
    stamp = tmp_path / "STAMP"
    want = b""
    if what == "directory":
        stamp.mkdir()
    elif what == "fifo":
        os.mkfifo(stamp)
    elif what == "huge":
        stamp.write_bytes(b"a" * (1 << 20))
        want = b"a" * 256  # the first 256 bytes: both sides read the same
    elif what == "not-utf8":
        stamp.write_bytes(b"\xff\xfe stamp\n")
        want = b"\xff\xfe stamp"
    elif what == "blank":
        stamp.write_bytes(b" \n\n")
    code = ("import sys; from zfsaga.plugin import entry, server\n"
            "sys.stdout.buffer.write(repr((entry._stamp(sys.argv[1]), "
            "server.read_stamp(sys.argv[1]))).encode())\n")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                             timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading a stamp that is a {what} still blocked 30 s in")
    assert out.returncode == 0, out.stderr
    assert out.stdout == repr((want, want)).encode()


def test_a_server_binds_a_socket_path_without_a_directory(tmp_path, monkeypatch) -> None:
    """`zfsaga serve --socket server.sock` (or ZFSAGA_SOCKET=server.sock): the socket in the
    working directory, not a crash on makedirs('')."""
    from zfsaga.plugin import server as server_mod

    monkeypatch.chdir(tmp_path)
    listener = server_mod.bind("server.sock")
    try:
        assert (tmp_path / "server.sock").is_socket()
    finally:
        listener.close()
