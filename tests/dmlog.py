"""The dm-log-writes log, read and replayed: the power-loss harness's block layer.

The kernel's log-writes target (Documentation/admin-guide/device-mapper/log-writes.rst) passes
every write to the data device and records it, in completion order, on a log device: sector 0
holds the super, then one sector per entry, each followed by the data it wrote (a discard and a
mark carry none; a mark's name sits in its own entry sector). A FLUSH entry is the moment the
disk promised everything written before it: replaying the log up to one onto a copy of the
starting disk gives the disk as a power cut there would leave it.

Written from the kernel's documented layout; no replay tool is used or copied."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

MAGIC = 0x6A736677736872
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8
_SUPER = struct.Struct("<QQQI")   # magic, version, nr_entries, sectorsize
_ENTRY = struct.Struct("<QQQQ")   # sector, nr_sectors, flags, data_len


class LogError(ValueError):
    """The log device does not hold a log-writes log, or it is cut short."""


@dataclass(frozen=True)
class Entry:
    index: int
    sector: int        # on the data device, in `sectorsize` units
    nr_sectors: int
    flags: int
    offset: int        # byte offset of its data in the log (discard, mark: none)
    mark: str | None

    @property
    def is_flush(self) -> bool:
        return bool(self.flags & FLUSH)


@dataclass
class Log:
    sectorsize: int
    entries: list[Entry]

    def mark(self, name: str) -> int:
        """Index of the entry of the mark called `name`."""
        for entry in self.entries:
            if entry.mark == name:
                return entry.index
        raise LogError(f"no mark {name!r} in the log")

    def flush_points(self, start: int = 0, end: int | None = None) -> list[int]:
        """Indexes of the FLUSH entries in [start, end): each is a power-cut point."""
        stop = len(self.entries) if end is None else end
        return [e.index for e in self.entries[start:stop] if e.is_flush]

    def writes(self) -> int:
        return sum(1 for e in self.entries if e.nr_sectors and not e.flags & (DISCARD | MARK))


def read_log(f: BinaryIO) -> Log:
    """Parse a log device (or an image of one)."""
    head = f.read(_SUPER.size)
    if len(head) < _SUPER.size:
        raise LogError("log too short for its super block")
    magic, version, count, sectorsize = _SUPER.unpack(head)
    if magic != MAGIC:
        raise LogError(f"not a log-writes log (magic {magic:#x})")
    if sectorsize not in (512, 1024, 2048, 4096):
        raise LogError(f"implausible sector size {sectorsize}")
    entries = []
    pos = sectorsize  # entries start at sector 1
    for index in range(count):
        f.seek(pos)
        block = f.read(sectorsize)
        if len(block) < sectorsize:
            raise LogError(f"log cut short at entry {index} of {count}")
        sector, nr, flags, data_len = _ENTRY.unpack_from(block)
        mark = None
        if flags & MARK:
            mark = block[_ENTRY.size:_ENTRY.size + data_len].decode(errors="replace")
        carries_data = not flags & (DISCARD | MARK)
        entries.append(Entry(index, sector, nr, flags, pos + sectorsize if carries_data else 0,
                             mark))
        pos += sectorsize * (1 + (nr if carries_data else 0))
    return Log(sectorsize, entries)


class Replayer:
    """Applies a log's entries, in order, onto a target device that held the starting disk:
    `advance(i)` brings it to the state just before entry i. Forward only, so one pass over
    the log serves every flush point."""

    def __init__(self, log: Log, log_dev: BinaryIO, target_path: str) -> None:
        self.log = log
        self.log_dev = log_dev
        self.fd = os.open(target_path, os.O_WRONLY)
        self.next = 0

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)

    def __enter__(self) -> "Replayer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def advance(self, upto: int) -> int:
        """Apply entries [next, upto); returns how many wrote data."""
        if upto < self.next:
            raise ValueError(f"cannot go back from entry {self.next} to {upto}")
        size = self.log.sectorsize
        applied = 0
        for entry in self.log.entries[self.next:upto]:
            if entry.flags & MARK or not entry.nr_sectors:
                continue
            length = entry.nr_sectors * size
            if entry.flags & DISCARD:
                # What a discarded range reads as is the device's choice; zeros is the
                # strictest (ZFS must not rely on trimmed data).
                data = bytes(length)
            else:
                self.log_dev.seek(entry.offset)
                data = self.log_dev.read(length)
                if len(data) != length:
                    raise LogError(f"entry {entry.index}: data cut short")
            os.pwrite(self.fd, data, entry.sector * size)
            applied += 1
        self.next = upto
        os.fsync(self.fd)
        return applied


def iter_marks(log: Log) -> Iterator[tuple[int, str]]:
    for entry in log.entries:
        if entry.mark is not None:
            yield entry.index, entry.mark
