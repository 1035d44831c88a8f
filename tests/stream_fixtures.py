"""Small send streams that real ZFS made, for the stream parser's host tests
(tests/test_stream.py), and the volume helpers the real-ZFS changed-blocks test shares.

    python -m tests.stream_fixtures            # on the host: boots the guest, (re)writes
                                               # tests/fixtures/streams/
    python -m tests.stream_fixtures --in-guest DIR   # what the guest runs

In the guest: a 1 MiB volume (volblocksize 8 KiB, lz4) written whole, snapshot @a and bookmark
#a; then known changes (a random block at 0, the last block, a write across the 64 KiB
boundary, zeroes over data, a discard, a block of a few bytes, which ZFS embeds in its pointer,
and the same bytes rewritten over a block), snapshot @b. Each stream is written by lzc_send,
as steps/zfs/send.py sends, with `zstream dump -v`'s listing of it beside it, and
`changes.json` says what was written where. Everything is compressible but one block: the
fixtures stay small.
"""
from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "streams"
POOL = os.environ.get("ZFSAGA_TEST_POOL", "zfsagatest")
BLKDISCARD = 0x1277  # <linux/fs.h> _IO(0x12, 119): discard a byte range of a block device
KIB = 1024


# -- volume helpers (guest side) ------------------------------------------------------------
def zfs(*args: str) -> str:
    return subprocess.run(["zfs", *args], check=True, capture_output=True, text=True).stdout


def make_volume(name: str, size: int, volblocksize: int = 8 * KIB, sparse: bool = False) -> str:
    """A zvol, lz4-compressed (zero blocks become holes, as on a zfsaga SR), and its device."""
    zfs("create", *(["-s"] if sparse else []), "-V", str(size), "-o",
        f"volblocksize={volblocksize}", "-o", "compression=lz4", name)
    return device(name)


def device(name: str, timeout: float = 60.0) -> str:
    path = f"/dev/zvol/{name}"
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        subprocess.run(["udevadm", "settle", "--timeout=5"], check=False)
        time.sleep(0.1)
    return path


def write(dev: str, offset: int, data: bytes) -> None:
    fd = os.open(dev, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(dev: str, offset: int, length: int) -> bytes:
    fd = os.open(dev, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def discard(dev: str, offset: int, length: int) -> None:
    fd = os.open(dev, os.O_WRONLY)
    try:
        fcntl.ioctl(fd, BLKDISCARD, struct.pack("=QQ", offset, length))
        os.fsync(fd)
    finally:
        os.close(fd)


def pattern(offset: int, length: int, tag: bytes = b"zfsaga") -> bytes:
    """Compressible bytes that differ by offset and tag (lz4 stores them compressed)."""
    line = b"%s block at %012d " % (tag, offset)
    return (line * (length // len(line) + 1))[:length]


def snapshot(name: str) -> None:
    import libzfs_core

    libzfs_core.lzc_snapshot([name.encode()])


def bookmark(mark: str, snap: str) -> None:
    import libzfs_core

    libzfs_core.lzc_bookmark({mark.encode(): snap.encode()})


def send_to_file(path: Path, to: str, since: str | None, flags: list[str]) -> None:
    import libzfs_core

    with open(path, "wb") as f:
        libzfs_core.lzc_send(to.encode(), since.encode() if since else None, f.fileno(),
                             list(flags))


# -- the fixtures ---------------------------------------------------------------------------
SIZE = 1024 * KIB
BLOCK = 8 * KIB
ALL = ["large_blocks", "embedded_data", "compress"]
#: name: (since, flags); the target is always @b but for the full stream.
STREAMS = {
    "full-a": (None, ALL),
    "inc-plain": ("@a", []),
    "inc-all": ("@a", ALL),
    "inc-bookmark": ("#a", ALL),
}


def changes(dev: str) -> list[dict]:
    """The known changes between @a and @b, made on `dev`; each as the test expects it."""
    made = []

    def note(what: str, offset: int, length: int) -> None:
        made.append({"what": what, "offset": offset, "length": length})

    write(dev, 0, os.urandom(BLOCK)); note("random block", 0, BLOCK)
    # Half random, half zeroes: lz4 stores it compressed, too big to embed (a compressed WRITE).
    write(dev, SIZE - BLOCK, os.urandom(BLOCK // 2).ljust(BLOCK, b"\0"))
    note("last block", SIZE - BLOCK, BLOCK)
    write(dev, 64 * KIB - 2 * KIB, pattern(0, 4 * KIB, b"straddle"))
    note("across 64 KiB", 64 * KIB - 2 * KIB, 4 * KIB)
    write(dev, 256 * KIB, bytes(2 * BLOCK)); note("zeroes over data", 256 * KIB, 2 * BLOCK)
    discard(dev, 512 * KIB, 4 * BLOCK); note("discard", 512 * KIB, 4 * BLOCK)
    write(dev, 768 * KIB, b"tiny".ljust(BLOCK, b"\0")); note("embedded", 768 * KIB, BLOCK)
    same = read(dev, 832 * KIB, BLOCK)
    write(dev, 832 * KIB, same); note("same bytes rewritten", 832 * KIB, BLOCK)
    return made


def in_guest(out: Path) -> None:
    root = f"{POOL}/fx{uuid.uuid4().hex[:8]}"
    zfs("create", root)
    vol = f"{root}/vol"
    try:
        dev = make_volume(vol, SIZE, BLOCK)
        for offset in range(0, SIZE, 64 * KIB):
            write(dev, offset, pattern(offset, 64 * KIB))
        snapshot(f"{vol}@a")
        bookmark(f"{vol}#a", f"{vol}@a")
        made = changes(dev)
        snapshot(f"{vol}@b")
        for name, (since, flags) in STREAMS.items():
            target = f"{vol}@a" if since is None else f"{vol}@b"
            path = out / f"{name}.zstream"
            send_to_file(path, target, since and vol + since, flags)
            dump = subprocess.run(["zstream", "dump", "-v"], stdin=open(path, "rb"),
                                  check=True, capture_output=True, text=True).stdout
            (out / f"{name}.dump").write_text(dump)
        (out / "changes.json").write_text(json.dumps(
            {"size": SIZE, "volblocksize": BLOCK, "changes": made,
             "streams": {n: {"since": s, "flags": f} for n, (s, f) in STREAMS.items()},
             "zfs": zfs("version").split()}, indent=1) + "\n")
    finally:
        subprocess.run(["zfs", "destroy", "-r", root], check=False)


def files() -> tuple[str, ...]:
    return ("changes.json", *(f"{n}.{ext}" for n in STREAMS for ext in ("zstream", "dump")))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--in-guest"]:
        in_guest(Path(argv[1]))
        return 0
    from zfsaga.guest.run import run_in_guest

    FIXTURES.mkdir(parents=True, exist_ok=True)
    return run_in_guest([sys.executable, "-m", "tests.stream_fixtures", "--in-guest",
                         "/run/out"], timeout=900, keep=files(), keep_to=FIXTURES)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
