"""xapi's changed-blocks bitmap (steps/zfs/changed.py): 64 KiB per bit, most significant bit
first, covering the later point's size, `offset` and `length` honoured; held to a block-by-block
reading of the same ranges."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as s

from zfsaga.steps.zfs.changed import GRANULARITY, changed_blocks, marked, window
from zfsaga.steps.zfs.errors import InvalidValue
from zfsaga.steps.zfs.stream import Change

G = GRANULARITY


def test_block_i_is_bit_0x80_shifted_right_by_i_mod_8() -> None:
    bitmap = changed_blocks([Change(0, 1), Change(9 * G + 5, 1)], 17 * G)
    assert bitmap == bytes([0x80, 0x40, 0x00])  # blocks 0 and 9; 17 blocks: 3 bytes
    assert marked(bitmap) == [0, 9]


def test_a_range_marks_every_block_it_touches_and_no_other() -> None:
    bitmap = changed_blocks([Change(G - 1, 2)], 4 * G)  # one byte each side of a boundary
    assert marked(bitmap) == [0, 1]
    assert marked(changed_blocks([Change(G, G)], 4 * G)) == [1]


def test_a_free_to_the_end_stops_at_the_size() -> None:
    bitmap = changed_blocks([Change(3 * G, None, freed=True), Change(100 * G, G)], 5 * G + 1)
    assert marked(bitmap) == [3, 4, 5] and len(bitmap) == 1


def test_the_window_starts_at_the_block_holding_offset() -> None:
    ranges = [Change(0, 1), Change(5 * G, 1), Change(9 * G, 1)]
    assert marked(changed_blocks(ranges, 16 * G, 5 * G + 7, 4 * G)) == [0, 4]
    assert marked(changed_blocks(ranges, 16 * G, 5 * G, 4 * G)) == [0]
    assert changed_blocks(ranges, 16 * G, 16 * G, -1) == b""


@pytest.mark.parametrize("size, offset, length", [(G, -1, -1), (G, G + 1, -1), (G, 0, -2),
                                                  (-1, 0, -1)])
def test_a_window_off_the_disk_is_invalid(size, offset, length) -> None:
    with pytest.raises(InvalidValue):
        window(size, offset, length)


def test_a_terabyte_freed_costs_no_loop_over_its_blocks() -> None:
    size = 1 << 40
    bitmap = changed_blocks([Change(G + 3, None, freed=True)], size)
    assert len(bitmap) == size // G // 8
    assert bitmap[0] == 0x7F and bitmap[1:] == b"\xff" * (len(bitmap) - 1)


def _naive(ranges, size, offset, length) -> set[int]:
    end = size if length == -1 else min(offset + length, size)
    first, stop = offset // G, -(-end // G)
    out = set()
    for block in range(first, stop):
        lo, hi = block * G, (block + 1) * G
        for r in ranges:
            r_end = size if r.length is None else r.offset + r.length
            if r.length != 0 and r.offset < hi and r_end > lo:
                out.add(block - first)
    return out


@settings(max_examples=300, deadline=None)
@given(data=s.data())
def test_the_bitmap_is_the_block_by_block_answer(data) -> None:
    size = data.draw(s.integers(0, 70 * G))
    offset = data.draw(s.integers(0, size))
    length = data.draw(s.one_of(s.just(-1), s.integers(0, 80 * G)))
    ranges = data.draw(s.lists(s.builds(
        Change, s.integers(0, 80 * G), s.one_of(s.none(), s.integers(0, 20 * G))), max_size=8))
    bitmap = changed_blocks(ranges, size, offset, length)
    first, end = window(size, offset, length)
    assert len(bitmap) == -(-max(0, end - first) // 8)
    assert set(marked(bitmap)) == _naive(ranges, size, offset, length)
