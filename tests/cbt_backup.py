"""The backup tool of the changed-block-tracking loop (issue 21), shared by the ten-round test
on real ZFS (tests/test_cbt_backup.py) and its round across a power cut (tests/power_cut.py):
what an incremental backup tool does with Volume.list_changed_blocks' answer (read the
bitmap as xapi's consumers read it, copy just the marked 64 KiB blocks from the snapshot's
read-only device onto a replica file, checksum both), and the "VM" whose seeded random writes,
discards and zeroes the loop backs up, with a mirror of what its disk must hold.
"""
from __future__ import annotations

import base64
import hashlib
import os
import random
import stat
import struct
from typing import Any, Callable, Iterator

from tests.stream_fixtures import discard, write

#: xapi's changed-block granularity: always 64 KiB (xapi-storage-script assumes it).
G = 64 * 1024
CHUNK = 1 << 20


def marked(answer: dict) -> set[int]:
    """The blocks the answer marks, read as xapi's consumers read it: base64, MSB first."""
    bitmap = base64.b64decode(answer["bitmap"], validate=True)
    return {i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (0x80 >> i % 8)}


def checksum(path: str, size: int) -> str:
    """sha256 of the first `size` bytes of a device or file."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in range(0, size, CHUNK):
            digest.update(os.pread(fd, min(CHUNK, size - offset), offset))
    finally:
        os.close(fd)
    return digest.hexdigest()


def copy_blocks(source: str, replica: str, blocks: set[int] | None, size: int) -> int:
    """Copy the given 64 KiB blocks (every block when None: the first, full backup) of
    `source` onto the same offsets of `replica`, made `size` long; the bytes copied."""
    wanted = range((size + G - 1) // G) if blocks is None else sorted(blocks)
    src = os.open(source, os.O_RDONLY)
    dst = os.open(replica, os.O_WRONLY | os.O_CREAT, 0o600)
    copied = 0
    try:
        if stat.S_ISREG(os.fstat(dst).st_mode):  # a file replica; a disk one has its size
            os.ftruncate(dst, size)
        for block in wanted:
            offset = block * G
            data = os.pread(src, min(G, size - offset), offset)
            assert len(data) == min(G, size - offset), f"short read of block {block}"
            os.pwrite(dst, data, offset)
            copied += len(data)
        os.fsync(dst)
    finally:
        os.close(src)
        os.close(dst)
    return copied


def incremental(call: Callable[..., Any], sr: str, key: str, key2: str, source: str,
                replica: str, size: int) -> set[int]:
    """One incremental backup, as a backup tool makes it: Volume.list_changed_blocks from
    `key` (the last backup's snapshot, metadata-only by now) to `key2` over the whole disk, as
    xapi asks it (0, -1), its answer's shape checked, the marked blocks copied from `source`
    (key2's read-only device) onto the replica; the blocks marked."""
    answer = call("Volume.list_changed_blocks", sr=sr, key=key, key2=key2, offset=0,
                  length=-1)
    assert answer["granularity"] == G
    assert len(base64.b64decode(answer["bitmap"])) == (size + G - 1) // G // 8
    blocks = marked(answer)
    copy_blocks(source, replica, blocks, size)
    return blocks


def blocks_of(offset: int, length: int) -> set[int]:
    return set(range(offset // G, (offset + length - 1) // G + 1)) if length else set()


class Vm:
    """A VM writing to its disk (a block device): seeded random writes of random sizes at
    random offsets, a 64 KiB-aligned discard in some rounds (a zvol discards only whole volume
    blocks, which 64 KiB always covers) and zeroes over data in others. `mirror` is what the
    disk must hold after them, for the test's own check of the device."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        self.mirror = bytearray(size)

    def fill(self, dev: str) -> None:
        """Write the disk whole first (as an installed VM's disk is): every block then has a
        birth in ZFS's history, so a changed block's bit is exact, never a never-written
        hole's."""
        data = random.Random(self.seed).randbytes(self.size)
        self._pwrite(dev, 0, data)

    def round(self, dev: str, r: int) -> set[int]:
        """Round r's changes, made on `dev` and mirrored: the 64 KiB blocks they touched."""
        rng = random.Random(self.seed * 1000 + r)
        touched: set[int] = set()
        for _ in range(rng.randint(2, 5)):
            length = rng.randint(1, 3 * G)
            offset = rng.randrange(0, self.size - length)
            self._pwrite(dev, offset, rng.randbytes(length))
            touched |= blocks_of(offset, length)
        if r % 3 == 1:
            nblocks = rng.randint(1, 3)
            offset = rng.randrange(0, self.size // G - nblocks) * G
            self._discard(dev, offset, nblocks * G)
            touched |= blocks_of(offset, nblocks * G)
        if r % 3 == 2:
            length = rng.randint(4096, 2 * G)
            offset = rng.randrange(0, self.size - length)
            self._pwrite(dev, offset, bytes(length))
            touched |= blocks_of(offset, length)
        return touched

    def cut_writes(self) -> Iterator[tuple[int, bytes]]:
        """The writes `write_until_cut` makes, in order: 4 KiB of random bytes at a random
        4 KiB-aligned offset each, the same every time for the same seed."""
        rng = random.Random(self.seed * 1000 + 999)
        while True:
            yield rng.randrange(0, self.size // 4096) * 4096, rng.randbytes(4096)

    def write_until_cut(self, dev: str, log: str) -> None:
        """`cut_writes`' writes, one after another until the power is cut, each made durable
        (fsync: the zvol's ZIL commit) and then counted in the first block of `log` (another
        disk), itself made durable: after a cut, the count says which writes surely reached
        the disk, and the one after them may have too. Not mirrored."""
        fd, log_fd = os.open(dev, os.O_WRONLY), os.open(log, os.O_WRONLY)
        try:
            done = 0
            for offset, data in self.cut_writes():
                os.pwrite(fd, data, offset)
                os.fsync(fd)
                done += 1
                os.pwrite(log_fd, struct.pack("=Q", done).ljust(4096, b"\0"), 0)
                os.fsync(log_fd)
        finally:
            os.close(fd)
            os.close(log_fd)

    def _pwrite(self, dev: str, offset: int, data: bytes) -> None:
        write(dev, offset, data)
        self.mirror[offset:offset + len(data)] = data

    def _discard(self, dev: str, offset: int, length: int) -> None:
        discard(dev, offset, length)
        self.mirror[offset:offset + length] = bytes(length)

    def changed_since(self, before: bytes) -> set[int]:
        """The 64 KiB blocks whose bytes differ from `before` (the mirror at the last round)."""
        return {b for b in range(self.size // G)
                if self.mirror[b * G:(b + 1) * G] != before[b * G:(b + 1) * G]}


def writes_counted(log: str) -> int:
    """How many of `Vm.write_until_cut`'s writes its log counts as durable."""
    fd = os.open(log, os.O_RDONLY)
    try:
        return struct.unpack("=Q", os.pread(fd, 8, 0))[0]
    finally:
        os.close(fd)
