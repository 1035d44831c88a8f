"""The changed-blocks bitmap xapi's `Volume.list_changed_blocks` answers with, from a volume's
written and freed byte ranges (steps/zfs/stream.py reads them from a send stream).

xapi's `changed_blocks`: one bit per 64 KiB block (xapi-storage-script drops the granularity
field and assumes 64 KiB), most significant bit first (block i is
`byte[i // 8] & (0x80 >> i % 8)`, as xapi's consumers read it), covering the later point's
size; a block is marked when any byte of it was written or freed in between. `offset` and
`length` narrow it to a window of the disk (xapi passes 0 and -1: the whole disk); the window's
first bit is the block holding `offset`.
"""
from __future__ import annotations

from typing import Iterable

from zfsaga.steps.zfs.errors import InvalidValue
from zfsaga.steps.zfs.stream import Change

GRANULARITY = 64 * 1024
WHOLE_DISK = -1  # xapi's `length` for "to the end"


def window(size: int, offset: int, length: int) -> tuple[int, int]:
    """The blocks [first, end) the answer covers, or InvalidValue for a window off the disk."""
    if size < 0 or offset < 0 or offset > size or length < WHOLE_DISK:
        raise InvalidValue("list_changed_blocks",
                           f"offset {offset} and length {length} are not a window of a disk "
                           f"of {size} bytes (offset in [0, size], length >= 0 or -1)")
    end = size if length == WHOLE_DISK else min(offset + length, size)
    return offset // GRANULARITY, -(-end // GRANULARITY)


def _mark(bitmap: bytearray, first: int, last: int) -> None:
    """Set bits first..last (inclusive), whole bytes at once: a freed range of a terabyte
    costs a slice assignment, not a loop over its blocks."""
    head, tail = first // 8, last // 8
    high = 0xFF >> (first % 8)  # bits first.. of the head byte (most significant first)
    low = (0xFF << (7 - last % 8)) & 0xFF  # bits ..last of the tail byte
    if head == tail:
        bitmap[head] |= high & low
        return
    bitmap[head] |= high
    bitmap[head + 1:tail] = b"\xff" * (tail - head - 1)
    bitmap[tail] |= low


def changed_blocks(changes: Iterable[Change], size: int, offset: int = 0,
                   length: int = WHOLE_DISK) -> bytes:
    """The bitmap of the blocks in the window that any change touches (a change past the
    window, or a to-the-end free beyond `size`, marks nothing outside it)."""
    first_block, end_block = window(size, offset, length)
    count = max(0, end_block - first_block)
    bitmap = bytearray(-(-count // 8))
    for change in changes:
        if change.length == 0:
            continue
        start = change.offset // GRANULARITY
        stop = (end_block if change.length is None
                else -(-(change.offset + change.length) // GRANULARITY))
        start, stop = max(start, first_block), min(stop, end_block)
        if start < stop:
            _mark(bitmap, start - first_block, stop - 1 - first_block)
    return bytes(bitmap)


def marked(bitmap: bytes) -> list[int]:
    """The block numbers a bitmap marks, as xapi's consumers read it (for tests and reports)."""
    return [i * 8 + bit for i, byte in enumerate(bitmap) if byte
            for bit in range(8) if byte & (0x80 >> bit)]
