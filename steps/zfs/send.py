"""What changed in a volume between two points of its history, from an incremental send
stream read in-process: `lzc_send` writes the stream into a pipe from a thread while this
thread reads the records off the other end (steps/zfs/stream.py), so no stream is stored and
memory stays bounded whatever changed. Real ZFS only (pyzfs); read-only, so under no saga.

The stream's flags (lzc_send's): `compress` sends each block as stored, compressed, so ZFS
decompresses nothing and the pipe carries less; `embedded_data` sends a block held inside its
pointer as its few bytes (WRITE_EMBEDDED); `large_blocks` sends a block above 128 KiB as one
WRITE, not split. None changes which ranges the records name; the parser reads each payload's
length from its record (a compressed WRITE's `drr_compressed_size`, else its logical size; an
embedded block's `drr_psize` rounded to 8). Not `raw`: a raw stream is for encrypted datasets
whose key is not loaded, and an attached volume has its key loaded.
"""
from __future__ import annotations

import errno
import os
import threading
from typing import Callable, Iterator, TypeVar

from zfsaga.steps.zfs.changed import WHOLE_DISK, changed_blocks, window
from zfsaga.steps.zfs.errors import StreamError, from_lzc
from zfsaga.steps.zfs.stream import Change, SendStream, volume_changes

T = TypeVar("T")
# pyzfs 2.1 takes the flags as str (its docstring says bytes; its code looks up str keys).
SEND_FLAGS = ("large_blocks", "embedded_data", "compress")
PIPE_SIZE = 1 << 20  # fewer wake-ups of the two threads than the pipe's default 64 KiB


def _widen(fd: int) -> None:
    import fcntl

    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except OSError:
        pass  # a host's pipe-max-size below 1 MiB: the default works, more slowly


def read_changes(to_snapshot: str, since: str | None,
                 consume: Callable[[Iterator[Change]], T]) -> T:
    """`consume`'s result over the changed ranges of the send from `since` (a snapshot or
    bookmark, `pool/vol@s` or `pool/vol#b`; None: a full send, everything written) to
    `to_snapshot`. A send that fails raises its typed error (NotFound, NotAncestor, ...); a
    stream the parser refuses raises a StreamError; either way nothing is answered."""
    import libzfs_core

    rfd, wfd = os.pipe()
    _widen(wfd)
    failure: list[BaseException] = []

    def send() -> None:
        try:
            libzfs_core.lzc_send(to_snapshot.encode(), since.encode() if since else None,
                                 wfd, list(SEND_FLAGS))
        except BaseException as exc:  # handed to the reading thread, which raises it
            failure.append(exc)
        finally:
            os.close(wfd)  # the reader's end of the stream: it must see EOF after END

    sender = threading.Thread(target=send, name="lzc_send", daemon=True)
    sender.start()
    parse_error: StreamError | None = None
    try:
        result = consume(volume_changes(SendStream(rfd, f"send {since} -> {to_snapshot}")))
    except StreamError as exc:
        parse_error = exc
    finally:
        os.close(rfd)  # a reader that stopped early: the sender's write fails, it returns
        sender.join()
    if failure:
        exc = failure[0]
        # The sender's EPIPE after the reader gave up is the reader's error's echo.
        if not (parse_error and getattr(exc, "errno", None) == errno.EPIPE):
            import libzfs_core.exceptions as lzc_exc

            if isinstance(exc, lzc_exc.ZFSError):
                raise from_lzc(exc, to_snapshot) from None
            raise exc
    if parse_error is not None:
        raise parse_error
    return result


def changed_bitmap(to_snapshot: str, since: str, size: int, offset: int = 0,
                   length: int = WHOLE_DISK) -> bytes:
    """xapi's changed-blocks bitmap (steps/zfs/changed.py) between `since` and `to_snapshot`,
    whose volume size is `size`. A window off the disk is refused before any send."""
    window(size, offset, length)
    return read_changes(to_snapshot, since,
                        lambda changes: changed_blocks(changes, size, offset, length))
