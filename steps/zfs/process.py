"""One `zfs` or `zpool` process, bounded in time: its exit status and what it printed.

Not `subprocess`: a read-only verb runs exactly one `zfs get`, and importing subprocess (with
its signal, threading, selectors and locale) costs a fifth of that verb's start in the guest.
This is the little of it the layer needs: spawn with stdin on /dev/null, read stdout and stderr
to their end through poll, kill at the deadline.
"""
from __future__ import annotations

import os
import select
import time


class TimedOut(Exception):
    """The process did not finish in time; it was killed. Its effect, if any, is unknown."""


class Finished:
    """How a process ended (the fields of subprocess's CompletedProcess the layer reads)."""

    __slots__ = ("returncode", "stdout", "stderr")

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(argv: list[str], timeout: float) -> Finished:
    """Run `argv` (argv[0] a path, or a name found on PATH): never a shell."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        # The pipes are close-on-exec; the file actions dup them onto 0-2 for the child only.
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2)])
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
        os.close(null)
    try:
        chunks = _read_both(out_r, err_r, time.monotonic() + timeout)
    except BaseException:
        _kill(pid)
        raise
    _, status = os.waitpid(pid, 0)
    return Finished(os.waitstatus_to_exitcode(status),
                    chunks[out_r].decode("utf-8", "replace"),
                    chunks[err_r].decode("utf-8", "replace"))


def _read_both(out_fd: int, err_fd: int, until: float) -> dict[int, bytes]:
    """Both pipes read to their end (the process closed them: it is exiting); TimedOut first
    if the deadline passes."""
    chunks = {out_fd: bytearray(), err_fd: bytearray()}
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    open_fds = set(chunks)
    try:
        while open_fds:
            left = until - time.monotonic()
            if left <= 0:
                raise TimedOut()
            for fd, _ in poller.poll(left * 1000):
                data = os.read(fd, 65536)
                if data:
                    chunks[fd] += data
                else:
                    open_fds.discard(fd)
                    poller.unregister(fd)
    finally:
        os.close(out_fd)
        os.close(err_fd)
    return {fd: bytes(data) for fd, data in chunks.items()}


def _kill(pid: int) -> None:
    import signal  # only here: its import (enums) is a cost every successful call would pay

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)  # reaped: no zombie left in a long-lived caller (the CLI, tests)
