"""An answer to xapi within a bounded time, even when ZFS stops answering.

A pool whose disk fails suspends its I/O (failmode=wait, ZFS's default): every ZFS call and
every write of the journal, which lives on that pool, then waits in the kernel, uninterruptibly,
until an admin runs `zpool clear`. xapi-storage-script sets no timeout on a plugin call, so a
verb stuck there would hang its xapi task, and the admin's `xe` command, with no word of why.

So every call runs in a child process and the entry point itself only waits for it, with a
deadline. When the child answers in time, its answer is the call's answer, byte for byte. When
it does not, the entry point answers with a Busy error that says what it waited for and where
the work stands, and exits; the child keeps going. The work was journaled before it touched
ZFS, so when the pool comes back the child finishes it (or compensates), and if the child is
gone by then, the SR's next call or `zfsaga resume` does. Meanwhile the child holds the SR's
lock: other calls on the SR answer Busy at their own deadlines, never a second saga on top.

The child writes stdout and stderr into pipes the entry point relays: after the deadline
nothing of the child may keep xapi-storage-script's pipes open (it reads them to their end).
"""
from __future__ import annotations

import json
import os
import select
import sys
import time

from zfsaga.plugin.errors import Busy, InternalError

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import IO, Callable

#: How long a call may take before xapi is answered (ZFSAGA_CALL_DEADLINE overrides, in
#: seconds). A healthy pool answers any verb in seconds; this only bounds a stuck one, so it
#: is long enough for a busy host and short enough that an admin is told.
DEFAULT_DEADLINE = 300.0


def deadline() -> float:
    raw = os.environ.get("ZFSAGA_CALL_DEADLINE", "")
    try:
        value = float(raw) if raw else DEFAULT_DEADLINE
    except ValueError:
        return DEFAULT_DEADLINE
    return value if 0 < value < 1e7 else DEFAULT_DEADLINE


def lock_wait() -> float:
    """How long a call waits for its SR (or pool): until shortly before its deadline, so
    that sagas queued behind one another (served in order: state/locks.py) all fit, and a
    wait that cannot end in time is answered by the saga's own Busy, naming what it waited
    for, not by the deadline's."""
    return max(5.0, deadline() - 15.0)


class _Tolerant:
    """A text stream whose writes never fail: after the deadline the entry point is gone and
    its pipes are closed, and a log line must not cost the child its saga."""

    def __init__(self, fd: int) -> None:
        self._stream = os.fdopen(fd, "w", encoding="utf-8", errors="replace", buffering=1)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return False


def run_bounded(verb: str, run: Callable[[IO[str]], int], stdout: IO[str],
                stderr: IO[str], seconds: float | None = None) -> int:
    """Run `run(stdout)` in a child and relay its output; answer Busy at the deadline."""
    seconds = deadline() if seconds is None else seconds
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    stdout.flush()
    stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: does the call, owns none of the entry point's pipes
        os.close(out_r)
        os.close(err_r)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.close(out_w)
        os.close(err_w)
        sys.stdout, sys.stderr = _Tolerant(1), _Tolerant(2)
        code = 70
        try:
            code = run(sys.stdout)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    answer = _relay(out_r, err_r, stderr, time.monotonic() + seconds)
    if answer is None:
        stdout.write(busy_answer(verb, seconds, pid))
        stdout.flush()
        return 1
    _, status = os.waitpid(pid, 0)  # it closed its pipes: it is exiting
    return finish(verb, answer, os.waitstatus_to_exitcode(status), stdout)


def busy_answer(verb: str, seconds: float, pid: int) -> str:
    """The error JSON for a call past its deadline, whose process (pid) goes on."""
    error = Busy(f"{verb} did not answer within {seconds:g} s: ZFS is not answering "
                 f"(a suspended pool waits for its disk: see `zpool status`). The call goes "
                 f"on in process {pid}; its saga, if it started one, is journaled and "
                 f"finishes or is undone when the pool answers again (`zfsaga list` shows "
                 f"it; `zfsaga resume` after `zpool clear`).")
    return json.dumps(error.to_json()) + "\n"


def finish(verb: str, answer: bytes, code: int | None, stdout: IO[str]) -> int:
    """Write a finished call's answer and return its exit status. `code`: the process's exit
    code (negative: the signal that killed it; None: unknown, the process that knew is gone)."""
    if code != 0 and not answer.strip():
        # Killed, or died in a library, before it answered: xapi still gets the error form.
        how = ("an unknown status" if code is None else f"signal {-code}" if code < 0
               else f"exit status {code}")
        error = InternalError(f"{verb}: the process doing it died ({how}) before answering. "
                              f"A saga it started is journaled: the next call on the same SR "
                              f"(or pool) finishes or undoes it; `zfsaga list` shows it.")
        answer = (json.dumps(error.to_json()) + "\n").encode()
    stdout.write(answer.decode("utf-8", "replace"))
    stdout.flush()
    if code is None:  # an answer, but no status: an error answer is the only safe reading
        return 0 if answer.strip() and not answer.lstrip().startswith(b'{"code"') else 1
    return code if code > 0 else 1 if code < 0 else 0


def _relay(out_fd: int, err_fd: int, stderr: IO[str], until: float) -> bytes | None:
    """The child's stdout once both its pipes are closed, its stderr relayed as it comes;
    None when the deadline passes first."""
    answer = bytearray()
    open_fds = {out_fd, err_fd}
    try:
        while open_fds:
            left = until - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select(list(open_fds), [], [], left)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.discard(fd)
                elif fd == out_fd:
                    answer += chunk
                else:
                    stderr.write(chunk.decode("utf-8", "replace"))
                    stderr.flush()
        return bytes(answer)
    finally:
        os.close(out_fd)
        os.close(err_fd)
