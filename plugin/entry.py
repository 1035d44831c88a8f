# zfsaga's SMAPIv3 entry point: xapi-storage-script runs it under each verb's name
# (`SR.attach --json`, `Plugin.Query --json`, ...), through symlinks that `make install` lays.
#
# It is thin: it hands the call to the warm server (plugin/server.py: one process per host that
# has loaded zfsaga and forks a child per call), relays the child's answer, and exits with its
# status. It keeps xapi's stdout and stderr itself (the child writes into pipes made here) and
# bounds its wait with the call's deadline, as plugin/deadline.py does in-process. When no
# server answers (not installed, not enabled, dead, refused, another install's), it runs the
# call in-process exactly as before, and notes once that it did: a missing server costs speed,
# never a call. Only a call the server's child never started runs here (the go byte: see the
# wire in plugin/server.py), so no call runs twice.
#
# This one file must parse on Python 3.6: with SMAPI tracing on, xapi-storage-script runs a
# plugin as `/usr/bin/python3 -m observer <script>`, whatever its shebang, and XCP-ng 8.3's dom0
# has 3.6. So: no annotations, no f-strings with `=`, nothing newer. On a Python older than
# zfsaga needs, it answers with the error JSON, which names the version it needs.
# Its own start must stay near a bare interpreter's: only builtin modules on the served path,
# and `python3 -S` (the shebang tools/install.py writes): no `site` until a call runs here.
import os
import sys

REQUIRED = (3, 11)
SOCKET = "/run/zfsaga/server.sock"
#: How long to wait for the server's child to start (fork and read the request) before
#: running the call here instead; at most a quarter of the call's deadline (see _run).
START_WAIT = 10.0
#: How long to wait for it once the server said it is still loading (it started on this very
#: call, as socket activation does, and loads for seconds on a slow host); never past half
#: the call's deadline (see _served).
LOAD_WAIT = 120.0
#: plugin/server.py UNRUN: the exit status of a child that ran nothing (no go byte in time).
UNRUN = 75
DEFAULT_DEADLINE = 300.0


def _too_old():
    import json

    found = ".".join(str(part) for part in sys.version_info[:3])
    message = ("zfsaga needs Python %d.%d or newer; this is Python %s (%s)"
               % (REQUIRED[0], REQUIRED[1], found, sys.executable))
    sys.stdout.write(json.dumps({
        "code": "SR_BACKEND_FAILURE", "params": ["Unimplemented", message],
        "backtrace": {"error": "Unimplemented: " + message, "files": [], "lines": []}}) + "\n")
    sys.stdout.flush()
    return 1


def _library():
    # <prefix>/libexec/xapi-storage-script/{volume,datapath}/<dir>/<this> -> <prefix>/lib/zfsaga
    here = os.path.dirname(os.path.realpath(__file__))
    prefix = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(here))))
    return os.environ.get("ZFSAGA_LIBRARY") or os.path.join(prefix, "lib", "zfsaga")


def _socket_path():
    # ZFSAGA_SOCKET, else in the run dir; plugin/server.py uses this one too.
    run_dir = os.environ.get("ZFSAGA_RUN_DIR") or os.path.dirname(SOCKET)
    return os.environ.get("ZFSAGA_SOCKET") or os.path.join(run_dir, "server.sock")


def _stamp(library):
    # Non-blocking: a FIFO at STAMP would hang open() (every call, and the server) for ever;
    # so it reads as no stamp, as a directory or nothing there does. A file reads as ever.
    try:
        fd = os.open(os.path.join(library, "STAMP"), os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        return os.read(fd, 256).strip()
    except OSError:
        return b""
    finally:
        os.close(fd)


def _deadline():
    # plugin/deadline.py's deadline(), restated: this file imports nothing of zfsaga on the
    # served path (tests/test_plugin_verbs.py holds it to that), and the two must agree.
    raw = os.environ.get("ZFSAGA_CALL_DEADLINE", "")
    try:
        value = float(raw) if raw else DEFAULT_DEADLINE
    except ValueError:
        return DEFAULT_DEADLINE
    return value if 0 < value < 1e7 else DEFAULT_DEADLINE


def _std_fds_taken():
    """Whether fd 0 was open; and any of fds 0-2 that was closed now holds /dev/null, so that
    the socket and pipes made here never land on them (a socket on fd 0 would be read as the
    call's stdin, a pipe on fd 1 written as its answer). An open stdin rides to the server's
    child, which reads it as the call in-process would (only once it knows the verb and its
    arguments' form); a closed one stays closed to the call."""
    stdin_open = True
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            if fd == 0:
                stdin_open = False
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:  # the lowest free descriptor is this one, unless a lower was too
                os.dup2(null, fd)
                os.close(null)
    return stdin_open


def _request(stamp, verb, where, stdin):
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/"
    argv = [os.fsencode(a) for a in sys.argv[1:]]
    env = [k + b"=" + v for k, v in os.environb.items()]
    mask = os.umask(0)  # the only way to read it: set, then put back at once
    os.umask(mask)
    fields = ([stamp, os.fsencode(verb), os.fsencode(where), os.fsencode(cwd),
               str(len(argv)).encode()] + argv + [str(len(env)).encode()] + env
              + [b"+" if stdin else b"-", ("%o" % mask).encode()])
    body = b"".join(str(len(f)).encode() + b":" + f + b"," for f in fields)
    return b"ZFSAGA/1 " + str(len(body)).encode() + b"\n" + body


class _NotServed(Exception):
    """No server ran this call: run it here. Its words go to the one-time note."""


def _served(library, verb, where, stdin, began, seconds):
    """The call through the server: its exit status. _NotServed when no server's child took
    it (stdin is then untouched, for the call run here). `began`, `seconds`: when the call
    began (time.monotonic) and its deadline: its answer is due at began + seconds."""
    import _socket
    import select

    path = _socket_path()
    stamp = _stamp(library)
    if not stamp:
        raise _NotServed("this install has no stamp (%s)" % os.path.join(library, "STAMP"))
    wait = min(START_WAIT, seconds / 4.0)  # the rest of the deadline is the call's
    sock = _connect(_socket, path, wait)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        fds = b"".join(fd.to_bytes(4, sys.byteorder)
                       for fd in ([0] if stdin else []) + [out_w, err_w])
        payload = _request(stamp, verb, where, stdin)
        sent = sock.sendmsg([payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        if sent < len(payload):
            sock.sendall(payload[sent:])
        # A loading server (P) is waited for longer, but only until half the deadline: the
        # other half is the call's, served or run here (a load that long is stuck, or the
        # host too slow for any server to help this call).
        line = _line(sock, select, wait, began + seconds / 2.0)
    except OSError as exc:
        # A refusal (R: not root; V: another install) is sent before the request is read,
        # and the connection closed: a large request then fails to send. The reply is
        # still there to read, and says why better than the broken pipe does.
        line = _after_refusal(sock, select)
        why = str(exc)
    else:
        why = "the server did not start the call within %gs" % wait
    finally:
        os.close(out_w)
        os.close(err_w)
    if not line.startswith(b"S"):
        for fd in (out_r, err_r):
            os.close(fd)
        sock.close()
        if line.startswith(b"V"):
            why = "the server runs another install of zfsaga: it exits, the next start loads this one"
        elif line.startswith(b"R"):
            why = "the server refused this caller (%s)" % line[1:].strip().decode("ascii", "replace")
        raise _NotServed(why)
    try:
        sock.sendall(b"G")  # from here on this call is the child's, whatever happens
    except OSError as exc:  # the child is gone before its go: it ran nothing
        for fd in (out_r, err_r):
            os.close(fd)
        sock.close()
        raise _NotServed("the server's child went away before the call started (%s)" % exc)
    child = int(line[1:].strip() or 0)
    return _relay(sock, select, out_r, err_r, verb, child, library, began, seconds)


def _connect(_socket, path, wait):
    """A socket connected to the server within `wait` seconds; _NotServed otherwise. Never a
    blocking connect: to a server that accepts nothing (stopped, stuck) once its queue is full,
    that waits forever, past the call's deadline. Non-blocking, a full queue is EAGAIN: tried
    again until `wait` is over (a burst of calls drains it in a moment)."""
    import time

    until = time.monotonic() + wait
    while True:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(wait)  # later waits are bounded by select
        try:
            sock.connect(path)
            return sock
        except (BlockingIOError, InterruptedError) as exc:
            sock.close()
            if time.monotonic() >= until:
                raise _NotServed("the server on %s accepts no call: its queue stayed full for "
                                 "%gs (%s)" % (path, wait, exc.strerror or exc))
            time.sleep(0.02)
        except OSError as exc:
            sock.close()
            raise _NotServed("no server answers on %s (%s)" % (path, exc.strerror or exc))


def _after_refusal(sock, select):
    try:
        return _line(sock, select, 1.0, 0.0)
    except OSError:
        return b""


def _line(sock, select, wait, latest):
    """The server's first answer line within `wait` seconds; b"" if none came. A server that
    is still loading says so (P): then the wait is LOAD_WAIT from that word, but ends by
    `latest` (time.monotonic) if that comes first, and never before `wait` would have."""
    import time

    until = time.monotonic() + wait
    data = b""
    while True:
        while data.startswith(b"P\n"):
            data = data[2:]
            until = max(until, min(time.monotonic() + LOAD_WAIT, latest))
        if b"\n" in data:
            return data
        left = until - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return b""
        chunk = sock.recv(256)
        if not chunk:
            return b""
        data += chunk


def _relay(sock, select, out_r, err_r, verb, child, library, began, seconds):
    """The child's answer to our stdout, its stderr as it comes, within the deadline; then
    its exit status: the server's wait status (W), else the child's own (X), else unknown."""
    import time

    until = began + seconds
    answer = []
    status = b""
    open_fds = {out_r: True, err_r: True, sock.fileno(): True}
    while open_fds:
        left = until - time.monotonic()
        ready = select.select(list(open_fds), [], [], left)[0] if left > 0 else []
        if not ready:
            sys.path.insert(0, library)
            from zfsaga.plugin.deadline import busy_answer

            sys.stdout.write(busy_answer(verb, seconds, child))
            sys.stdout.flush()
            return 1
        for fd in ready:
            chunk = sock.recv(256) if fd == sock.fileno() else os.read(fd, 65536)
            if not chunk:
                del open_fds[fd]
            elif fd == out_r:
                answer.append(chunk)
            elif fd == err_r:
                _write_all(2, chunk)
            else:
                status += chunk
                if b"W" in status and status.endswith(b"\n"):
                    del open_fds[fd]  # the server reaped it: nothing more comes
    os.close(out_r)
    os.close(err_r)
    sock.close()
    code = _exit_code(status)
    data = b"".join(answer)
    if code == UNRUN and b"X" not in status and not data:
        # The child waited for our go byte and gave up before it came (this process was
        # stalled): it ran nothing, so running the call here runs it once.
        raise _NotServed("the server's child %d gave up waiting for this call's go" % child)
    if code == 0 or (code is not None and code > 0 and data.strip()):
        _write_all(1, data)
        return code
    sys.path.insert(0, library)
    from zfsaga.plugin.deadline import finish

    return finish(verb, data, code, sys.stdout)


def _exit_code(status):
    for line in status.split(b"\n"):
        if line.startswith(b"W") and line[1:].lstrip(b"-").isdigit():
            return os.waitstatus_to_exitcode(int(line[1:]))
    for line in status.split(b"\n"):
        if line.startswith(b"X") and line[1:].lstrip(b"-").isdigit():
            return int(line[1:])
    return None


def _write_all(fd, data):
    while data:
        try:
            data = data[os.write(fd, data):]
        except OSError:
            return  # the caller closed its end: nobody reads this


def _note_fallback(why):
    """Say once (until a server starts again) that calls run without the server."""
    run_dir = os.path.dirname(_socket_path())
    note = os.path.join(run_dir, "fallback")
    if _read_note(note) == why.encode("utf-8", "replace"):
        return
    line = ("zfsaga: calls run without the warm server (slower, never lost): %s. "
            "See `zfsaga server status`." % why)
    sys.stderr.write(line + "\n")
    try:
        import syslog

        syslog.openlog("SMAPIv3: zfsaga[%d]" % os.getpid(), 0, syslog.LOG_LOCAL2)
        syslog.syslog(syslog.LOG_WARNING, line)
    except OSError:
        pass
    try:
        if not os.path.isdir(run_dir):
            os.makedirs(run_dir, 0o700)
        _write_note(note, why.encode("utf-8", "replace"))
    except OSError:
        pass


def _read_note(note):
    """The note's bytes; b"" when there is none, or what is there is not a plain file of ours
    (a link or a FIFO planted in the run directory is never followed, nor waited on)."""
    try:
        fd = os.open(note, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _write_note(note, data):
    """Root writes the note: into a new file of its own (O_EXCL: never through a link planted
    there), renamed over whatever is at the note's name (the link itself, not its target)."""
    fresh = "%s.%d" % (note, os.getpid())
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)
    try:
        os.rename(fresh, note)
    except OSError:
        os.unlink(fresh)


def _run():
    if tuple(sys.version_info[:2]) < REQUIRED:
        return _too_old()
    stdin_open = _std_fds_taken()
    library = _library()
    verb = os.path.basename(sys.argv[0])
    where = os.path.dirname(os.path.abspath(sys.argv[0]))
    if os.environ.get("ZFSAGA_SERVER", "1") != "0":
        import time

        began, seconds = time.monotonic(), _deadline()
        try:
            return _served(library, verb, where, stdin_open, began, seconds)
        except _NotServed as exc:
            _note_fallback(str(exc))
        # The wait for a server is part of the call's time: the call run here has what is
        # left of its deadline (plugin/deadline.py reads it, and so do its lock waits).
        # (A refusal at once, no socket, costs nothing worth a changed deadline.)
        spent = time.monotonic() - began
        if spent > 0.5:
            os.environ["ZFSAGA_CALL_DEADLINE"] = "%.3f" % max(seconds - spent, 0.001)
    if sys.flags.no_site:
        # The installed script runs as `python3 -S` (tools/install.py): `site` is a third of a
        # bare interpreter's start, and the relay needs nothing of it. The call run here does
        # (pyzfs is in the system's site-packages).
        import site

        site.main()
    sys.path.insert(0, library)
    from zfsaga.plugin.dispatch import main

    return main(verb, sys.argv[1:], stdin=sys.stdin if stdin_open else None, where=where)


if __name__ == "__main__":
    sys.exit(_run())
