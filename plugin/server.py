"""The warm server: one resident process per host that has imported everything the verbs need
(pyzfs, loguru, transitions, tenacity, sqlite3, the engine, every saga and verb) and forks one
child per call, as Mercurial's chg, Python's forkserver and Android's zygote do. A call then
costs an interpreter start for the thin entry point (plugin/entry.py), a fork, and the ZFS work,
not the ~5 s of imports an emulated guest pays per process (~0.3 s natively).

The child is what the per-call process is without the server (plugin/deadline.py's child):
its own pid holds the journal and the locks, it opens libzfs_core and configures logging
itself, reads the call's settings from the call's environment, and crash recovery, kill -9 and
fault injection behave as in-process. The entry point keeps xapi's stdout and stderr and bounds
its wait with the call's deadline; the child writes into pipes the entry point made.

The wire, on a Unix stream socket (mode 0600 under /run/zfsaga/; only root is served,
checked by SO_PEERCRED):

    client -> b"ZFSAGA/1 <n>\\n" + n bytes of netstrings (`<len>:<bytes>,`): the install's
              stamp, the verb, the plugin directory, the working directory, argc, argv...,
              envc, b"KEY=value"..., stdin (b"+" open, b"-" closed), the caller's umask
              (octal: the files a call makes are the caller's, as in-process); the call's stdin
              (when open) and its stdout and stderr pipes ride on the first bytes
              (SCM_RIGHTS): the child reads stdin as the call in-process would
    server -> b"P\\n"          (only while the server is still loading) wait: a child comes
    child  -> b"S<pid>\\n"     started: it runs nothing until the client says go
    client -> b"G"             go: from here the client waits for this child's answer
    child  -> b"X<code>\\n"    its exit status, after its answer is flushed
    server -> b"W<status>\\n"  the child's wait status, once reaped (absent if the server died)
    refusals, instead of S: b"V<its stamp>\\n" (the stamps differ), b"R<why>\\n" (not root)

A child that sent S but got no G within CLIENT_WAIT exits with UNRUN and sends no X: its
client, stalled that long, sees W<UNRUN> alone and runs the call itself (it never ran here).

The go byte is what makes the fallback safe: a client that saw no S, or gave up before
sending G, runs the call in-process, and a child that never gets G exits without running it.
So no call runs twice, and none is lost.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import struct
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, NoReturn

# Where the server listens (ZFSAGA_SOCKET, else server.sock in ZFSAGA_RUN_DIR, else
# /run/zfsaga, zfsaga.socket's ListenStream=) and how an install's stamp is read: one rule,
# the entry point's, which the client side of every call applies (it imports only os and sys).
from zfsaga.plugin.entry import SOCKET  # noqa: E402,F401
from zfsaga.plugin.entry import _socket_path as socket_path  # noqa: E402
from zfsaga.plugin.entry import _stamp as read_stamp  # noqa: E402

#: A request is a few fields and the environment: far less than this.
MAX_REQUEST = 4 << 20
#: How long a child waits for its client's request and go byte before it gives up unrun.
CLIENT_WAIT = 30.0
#: A child's exit status when it ran nothing because its go byte never came (EX_TEMPFAIL):
#: no verb exits with it, and a child that ran a verb always sends X first.
UNRUN = 75
#: What a verb needs, imported once here so that no call pays for it.
PRELOAD = ("json", "sqlite3", "loguru", "transitions", "tenacity", "zfsaga.log",
           "zfsaga.backend", "zfsaga.steps.zfs.real", "zfsaga.steps.zfs.channel",
           "zfsaga.steps.zfs.shared_model", "zfsaga.sagas.engine", "zfsaga.sagas.runner",
           "zfsaga.plugin.dispatch", "zfsaga.plugin.errors", "zfsaga.plugin.deadline",
           "zfsaga.plugin.volume", "zfsaga.plugin.sr", "zfsaga.plugin.query",
           "zfsaga.plugin.datapath", "zfsaga.plugin.pools", "zfsaga.plugin.run",
           "zfsaga.location", "encodings.ascii")


#: What the server loaded besides zfsaga (whose code the stamp covers), watched as the stamp
#: is: the host's package manager upgrades these by replacing their files, and a server still
#: running the old ones would fork children that mix them with the new files they import.
#: The interpreter itself, and ZFS's libraries (found mapped in the process), are watched too.
WATCHED_MODULES = ("os", "sqlite3", "_sqlite3", "libzfs_core", "cffi", "_cffi_backend",
                   "loguru", "transitions", "tenacity")
WATCHED_LIBRARIES = ("libzfs_core.so", "libnvpair.so", "libzfs.so", "libpython3")


def library_dir() -> str:
    """The directory the zfsaga package was loaded from (<prefix>/lib/zfsaga when installed)."""
    import zfsaga

    return os.path.dirname(os.path.dirname(os.path.abspath(zfsaga.__file__)))


def preload(between: Callable[[], None] = lambda: None) -> None:
    """Import what the verbs need, and load (never initialise) libzfs_core: its handle must be
    opened in each child (pyzfs opens it lazily, on the first call). `between` runs after each
    import: the server greets the callers that came meanwhile."""
    import importlib

    for name in PRELOAD:
        between()
        importlib.import_module(name)
    from zfsaga.sagas import catalog

    catalog.kinds()  # every saga module
    try:
        from libzfs_core.bindings import libnvpair, libzfs_core

        # An attribute read makes cffi dlopen the library; calling nothing leaves it unopened.
        libzfs_core.lib.libzfs_core_init  # noqa: B018
        libnvpair.lib.nvlist_alloc  # noqa: B018
    except (ImportError, OSError, AttributeError):
        pass  # a host without pyzfs: the verbs that need it fail in the child, as in-process
    from zfsaga import warm

    warm.prepare()  # what every child would redo: pyzfs's C types, loguru's library dirs


def dependency_marks() -> dict[str, tuple[int, int, int] | None]:
    """Each watched file the server runs (WATCHED_MODULES' files where loaded, the mapped
    WATCHED_LIBRARIES, the interpreter) and its identity now (device, inode, mtime)."""
    paths = {os.path.realpath(sys.executable)}
    for name in WATCHED_MODULES:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            paths.add(path)
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(None, 5)[5:]
                if path and any(lib in os.path.basename(path[0]) for lib in WATCHED_LIBRARIES):
                    paths.add(path[0].removesuffix(" (deleted)"))
    except OSError:
        pass  # no /proc: the modules and the interpreter are still watched
    return {path: _mark(path) for path in sorted(paths)}


def _mark(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns


def changed_since(marks: dict[str, tuple[int, int, int] | None]) -> list[str]:
    """The watched files that are not the ones the server loaded any more."""
    return [path for path, mark in marks.items() if _mark(path) != mark]


# -- the server --------------------------------------------------------------------------------
class Server:
    """The accept loop: check the caller, fork, reap. It reads nothing from a caller (a client
    that connects and stalls would stall every call): the child reads the request."""

    def __init__(self, listener: socket.socket, library: str) -> None:
        self.listener = listener
        self.library = library
        self.stamp = read_stamp(library)
        #: What the server loaded besides zfsaga, as it was on disk (set once loaded).
        self.marks = dependency_marks()
        self.children: dict[int, socket.socket] = {}
        self.wake_r, self.wake_w = os.pipe()
        self.stopping = False
        self.served = 0
        #: Callers that came while the server was loading: told to wait (P), forked once loaded.
        self.waiting: list[socket.socket] = []

    def warm_up(self) -> None:
        """Load what the verbs need. The first call after a start is what started the server
        (socket activation), and loading takes seconds on a slow host: each caller that comes
        meanwhile is told at once that the server is loading (P), so it waits for its child
        rather than run the call itself."""
        def greet() -> None:
            # Each file as it was when loaded (first seen), not as it is once the load ends:
            # one replaced meanwhile (an upgrade mid-load) is then a change run() sees.
            for path, mark in dependency_marks().items():
                self.marks.setdefault(path, mark)
            while (conn := self._take()) is not None:
                _send_quietly(conn, b"P\n")
                self.waiting.append(conn)

        preload(greet)
        greet()

    def run(self) -> int:
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd fires
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        # The socket systemd passed is where the entry points look, not this process's own
        # ZFSAGA_SOCKET (its environment is systemd's, not a call's): its directory holds
        # their note.
        where = self.listener.getsockname() or socket_path()
        _forget_fallback_notes(os.path.dirname(os.fsdecode(where)))
        say = _say  # loguru is configured in children only: the server writes plain lines
        say(f"serving on {where} "
            f"(stamp {self.stamp.decode(errors='replace') or 'none'}, pid {os.getpid()})")
        waiting, self.waiting = self.waiting, []
        if self._stale():
            # It changed while the server loaded: what it loaded may be half old, half new.
            # The callers it greeted get no S (closed): each runs its call in-process.
            for conn in waiting:
                conn.close()
            return 0
        for conn in waiting:
            self._fork(conn)
        while not self.stopping:
            try:
                ready, _, _ = select.select([self.listener, self.wake_r], [], [], 5.0)
            except InterruptedError:
                ready = []
            self._reap()
            if self.listener in ready:
                if self._stale():
                    break  # without accepting: the socket keeps the call for the next start
                conn = self._take()
                if conn is not None:
                    self._fork(conn)
        # Children in flight go on (zfsaga.service has KillMode=process): each tells its
        # client its exit status itself (X), and init reaps it.
        return 0

    def _stale(self) -> bool:
        """Whether the code on disk is not the code this server runs (it then says why):
        another install of zfsaga (its stamp differs), or a file it loaded besides zfsaga
        replaced (an upgrade). Either way it serves no more: the next start loads the new."""
        if read_stamp(self.library) != self.stamp:
            _say("the install changed under this server (its stamp differs): exiting, "
                 "the next call starts the new code")
            return True
        changed = changed_since(self.marks)
        if changed:
            _say(f"files it loaded were replaced (an upgrade: {', '.join(changed[:3])}): "
                 f"exiting, the next call starts anew")
            return True
        return False

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def _take(self) -> socket.socket | None:
        """A waiting caller's connection, once its peer is known to be root; None when none
        waits (or it was refused)."""
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            _say(f"accept failed: {exc}")
            time.sleep(0.1)
            return None
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
        if uid not in (0, os.geteuid()):
            _say(f"refused a call from uid {uid} (pid {pid}): only root is served")
            _send_quietly(conn, b"Rnot root\n")
            conn.close()
            return None
        return conn

    def _fork(self, conn: socket.socket) -> None:
        if threading.active_count() != 1:  # a fork would copy a lock another thread holds
            _say("a thread runs in the server: it forks no more (calls run in-process)")
            conn.close()
            self.stopping = True
            return
        try:
            child = os.fork()
        except OSError as exc:
            # At the cgroup's TasksMax, or short of memory: this call is not served (closed
            # before its S, its client runs it in-process); the server serves the next one.
            _say(f"fork failed ({exc}): a call runs in-process")
            conn.close()
            time.sleep(0.1)  # whatever exhausted it needs a moment: no busy loop over it
            return
        if child == 0:
            for other in self.children.values():  # other calls' connections are not its own
                other.close()
            self.children.clear()
            run_child(conn, self.listener, self.stamp, (self.wake_r, self.wake_w))
        self.children[child] = conn
        self.served += 1

    def _reap(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is not None:
                _send_quietly(conn, b"W%d\n" % status)
                conn.close()


def _send_quietly(conn: socket.socket, data: bytes) -> None:
    try:
        conn.setblocking(False)
        conn.send(data)
    except OSError:
        pass  # the client is gone: nobody to tell


def _say(line: str) -> None:
    sys.stderr.write(f"zfsaga server[{os.getpid()}]: {line}\n")
    sys.stderr.flush()


def _forget_fallback_notes(run_dir: str) -> None:
    """The entry points note once that they ran a call without the server (plugin/entry.py);
    a server that starts clears the note, so the next outage is logged again."""
    try:
        os.unlink(os.path.join(run_dir, "fallback"))
    except OSError:
        pass


# -- the child ---------------------------------------------------------------------------------
def run_child(conn: socket.socket, listener: socket.socket, stamp: bytes,
              server_fds: tuple[int, int]) -> NoReturn:
    """One call, in a fresh fork: never returns."""
    code = 70
    try:
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        # A caller gone mid-call must cost its child nothing but the writes (EPIPE, which
        # _Tolerant swallows): never a SIGPIPE death mid-saga, whatever started the server.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.set_wakeup_fd(-1)
        listener.close()
        for fd in server_fds:
            os.close(fd)
        conn.setblocking(True)
        conn.settimeout(CLIENT_WAIT)
        request, fds = _receive(conn)
        if request is None or len(fds) != 2 + request["stdin"]:
            os._exit(0)
        if request["stamp"] != stamp or not stamp:
            conn.sendall(b"V%s\n" % stamp)
            os._exit(0)
        conn.sendall(b"S%d\n" % os.getpid())
        try:
            go = conn.recv(1)
        except OSError:  # the wait ran out (socket.timeout is an OSError)
            go = b""
        if go != b"G":
            os._exit(UNRUN)  # the client gave up waiting, or will see UNRUN: it runs the call
        code = _answer(request, fds)
        conn.sendall(b"X%d\n" % code)
    except BaseException:  # noqa: BLE001 - a child never unwinds into the server's loop
        pass
    os._exit(code)


def _answer(request: dict, fds: list[int]) -> int:
    """The call itself, as deadline.py's child runs it: stdin, stdout and stderr are the
    client's (stdout and stderr its pipes)."""
    from zfsaga.plugin import deadline, dispatch

    if request["stdin"]:
        os.dup2(fds.pop(0), 0)
    else:
        os.close(0)  # the client's stdin was closed: so is the call's
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in fds:
        os.close(fd)
    sys.stdout, sys.stderr = deadline._Tolerant(1), deadline._Tolerant(2)
    stdin = os.fdopen(0, "rb", closefd=False) if request["stdin"] else None
    os.environb.clear()
    os.environb.update(request["env"])
    os.umask(request["umask"])  # the server's (systemd's) is not the caller's
    time.tzset()  # the C library read TZ once, from the server's environment: the log's times
    try:
        os.chdir(request["cwd"])
    except OSError:
        os.chdir("/")
    try:
        return dispatch.answer(request["verb"], request["argv"], stdin, sys.stdout,
                               request["where"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _receive(conn: socket.socket) -> tuple[dict | None, list[int]]:
    """The client's request and the two descriptors riding on it."""
    fds: list[int] = []
    buf = bytearray()
    want = None
    while want is None or len(buf) < want:
        data, ancdata, flags, _ = conn.recvmsg(65536, socket.CMSG_SPACE(3 * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
        if flags & socket.MSG_CTRUNC:
            return None, fds  # more descriptors than a request carries: not our client's
        if not data:
            return None, fds
        buf += data
        if want is None and b"\n" in buf:
            head, _, rest = bytes(buf).partition(b"\n")
            magic, _, size = head.partition(b" ")
            if magic != b"ZFSAGA/1" or not size.isdigit() or int(size) > MAX_REQUEST:
                return None, fds
            buf = bytearray(rest)
            want = int(size)
        elif want is None and len(buf) > 64:
            return None, fds
    return parse_request(bytes(buf)), fds


def parse_request(data: bytes) -> dict | None:
    """The netstrings of a request as a dict; None for anything malformed."""
    fields: list[bytes] = []
    at = 0
    while at < len(data):
        colon = data.find(b":", at, at + 12)
        if colon < 0 or not data[at:colon].isdigit():
            return None
        end = colon + 1 + int(data[at:colon])
        if end >= len(data) + 1 or data[end:end + 1] != b",":
            return None
        fields.append(data[colon + 1:end])
        at = end + 1
    try:
        stamp, verb, where, cwd, argc = fields[:5]
        argv = fields[5:5 + int(argc)]
        envc = int(fields[5 + len(argv)])
        env_items = fields[6 + len(argv):6 + len(argv) + envc]
        stdin, umask = fields[6 + len(argv) + envc:]
        mask = int(umask, 8) if umask.isdigit() else -1
    except (ValueError, IndexError):  # a count past the fields there are
        return None
    if not 0 <= mask <= 0o777:
        return None
    env = {}
    for item in env_items:
        key, eq, value = item.partition(b"=")
        if eq and key:
            env[key] = value
    return {"stamp": stamp, "verb": os.fsdecode(verb), "where": os.fsdecode(where),
            "cwd": cwd, "argv": [os.fsdecode(a) for a in argv], "env": env,
            "stdin": stdin == b"+", "umask": mask}


# -- starting it -------------------------------------------------------------------------------
def listener_from_systemd() -> socket.socket | None:
    """The socket systemd (or systemd-socket-activate) passed as fd 3, if it passed one."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return socket.socket(fileno=3)


def bind(path: str) -> socket.socket:
    """A socket of our own, for `zfsaga serve --socket PATH` without systemd."""
    if os.path.dirname(path):  # a bare name is in the working directory, which exists
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(128)
    return listener


def serve(path: str | None = None) -> int:
    listener = listener_from_systemd() or bind(path or socket_path())
    listener.setblocking(False)
    server = Server(listener, library_dir())
    server.warm_up()
    # What is loaded now is every child's, shared copy-on-write: frozen out of the collector,
    # a child's collections never touch (and so never copy) the parent's objects.
    import gc

    gc.collect()
    gc.freeze()
    return server.run()


def status(path: str | None = None) -> tuple[int, str]:
    """`zfsaga server status`: whether a server answers on the socket, and whose install it
    runs; (exit code, words)."""
    path = path or socket_path()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5.0)
    try:
        client.connect(path)
    except OSError as exc:
        return 1, (f"no server answers on {path} ({exc.strerror or exc}): every call runs "
                   f"in-process (slower, never lost). Enable it: systemctl enable --now "
                   f"zfsaga.socket")
    try:
        # A request that cannot match: the server's child answers V and runs nothing.
        body = b"".join(b"%d:%s," % (len(f), f) for f in
                        (b"status", b"-", b"/", b"/", b"0", b"0", b"-", b"22"))
        r, w = os.pipe()
        try:
            client.sendmsg([b"ZFSAGA/1 %d\n" % len(body) + body],
                           [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("2i", w, w))])
        finally:
            os.close(r)
            os.close(w)
        reply = b""
        # Its first line but the loading word (P): the server's W may follow at once.
        while True:
            if reply.startswith(b"P\n"):  # still loading: a child answers once it is done
                reply = reply[2:]
                client.settimeout(120.0)
                continue
            if b"\n" in reply:
                break
            chunk = client.recv(64)
            if not chunk:
                break
            reply += chunk
        reply = reply.split(b"\n", 1)[0]
    except OSError as exc:
        return 1, f"the server on {path} did not answer ({exc})"
    finally:
        client.close()
    if reply.startswith(b"V"):
        theirs = reply[1:].strip().decode(errors="replace")
        ours = read_stamp(library_dir()).decode(errors="replace")
        if not theirs:
            # A server without a stamp answers every call V: it serves none (run_child).
            return 1, (f"a server answers on {path}, but it has no stamp (not an install: "
                       "STAMP missing beside its package): it serves no call, every "
                       f"call runs in-process")
        if theirs != ours:
            return 1, (f"a server answers on {path}, but it runs another install (stamp "
                       f"{theirs or 'none'}, this one {ours or 'none'}): it is not used, and "
                       f"exits at the next call")
        return 0, f"a server answers on {path}, running this install (stamp {ours})"
    if reply.startswith(b"R"):
        return 1, f"the server on {path} refused this user: only root is served"
    return 1, f"the server on {path} answered {reply!r}, not a zfsaga server's answer"


def main(argv: list[str]) -> int:
    """`zfsaga serve [--socket PATH]` and `zfsaga server status [--socket PATH]`."""
    import argparse

    p = argparse.ArgumentParser(prog="zfsaga")
    sub = p.add_subparsers(dest="command", required=True)
    sv = sub.add_parser("serve", help="run the warm server (systemd starts it: zfsaga.socket)")
    sv.add_argument("--socket", default=None)
    st = sub.add_parser("server", help="the warm server's state")
    st.add_argument("what", choices=("status",))
    st.add_argument("--socket", default=None)
    args = p.parse_args(argv)
    if args.command == "serve":
        return serve(args.socket)
    code, words = status(args.socket)
    print(words)
    return code
