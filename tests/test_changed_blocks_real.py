"""Changed blocks from real ZFS's send streams (steps/zfs/send.py): exactly the 64 KiB blocks
touched between two snapshots, between a bookmark and a snapshot (its snapshot destroyed), and
between a snapshot and a temporary snapshot of the live volume, on a volume written whole
first; on a volume never written whole, no block missing and the extra ones counted. Then the
time on a 1 TiB thin volume, printed (not asserted: the guest's CPU is emulated)."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.conftest import POOL, destroy_tree, real_more, real_zfs, summary_line
from tests.stream_fixtures import (bookmark, discard, make_volume, pattern, read, snapshot,
                                   write, zfs)
from zfsaga.steps.zfs.changed import GRANULARITY as G, marked
from zfsaga.steps.zfs.errors import NotAncestor
from zfsaga.steps.zfs.send import changed_bitmap

pytestmark = pytest.mark.realzfs
KIB, MIB = 1024, 1024 * 1024


@pytest.fixture
def root():
    real_zfs()  # a clear failure without /dev/zfs
    name = f"{POOL}/cbt{uuid.uuid4().hex[:8]}"
    zfs("create", name)
    try:
        yield name
    finally:
        destroy_tree(name)


def touch(dev: str, size: int) -> set[int]:
    """The known changes; the 64 KiB blocks they touch."""
    write(dev, 0, os.urandom(8 * KIB))                              # the first block
    write(dev, size - 8 * KIB, os.urandom(8 * KIB))                 # the last
    write(dev, G - 2 * KIB, os.urandom(4 * KIB))                    # across blocks 0 and 1
    discard(dev, 16 * G, 2 * G)                                     # a discard: 16, 17
    write(dev, 32 * G + 16 * KIB, bytes(16 * KIB))                  # zeroes over data: 32
    write(dev, 48 * G, read(dev, 48 * G, 8 * KIB))                  # the same bytes again: 48
    return {0, 1, 16, 17, 32, 48, size // G - 1}


def test_changed_blocks_are_exactly_the_blocks_touched(request, root) -> None:
    size = 4 * MIB
    vol = f"{root}/vol"
    dev = make_volume(vol, size)
    write(dev, 0, b"".join(pattern(o, G) for o in range(0, size, G)))
    snapshot(f"{vol}@s0")
    bookmark(f"{vol}#s0", f"{vol}@s0")
    touched = touch(dev, size)
    snapshot(f"{vol}@s1")

    assert set(marked(changed_bitmap(f"{vol}@s1", f"{vol}@s0", size))) == touched
    window = changed_bitmap(f"{vol}@s1", f"{vol}@s0", size, offset=G + 5, length=16 * G)
    assert marked(window) == [0, 15, 16]  # blocks 1, 16, 17 of the window's 1..17
    with pytest.raises(NotAncestor):  # from the later point to the earlier
        changed_bitmap(f"{vol}@s0", f"{vol}@s1", size)
    zfs("destroy", f"{vol}@s0")  # a data-destroyed snapshot: its bookmark alone remains
    assert set(marked(changed_bitmap(f"{vol}@s1", f"{vol}#s0", size))) == touched

    write(dev, 40 * G + 100, b"live")  # the live volume, through a temporary snapshot
    snapshot(f"{vol}@tmp")
    try:
        assert marked(changed_bitmap(f"{vol}@tmp", f"{vol}@s1", size)) == [40]
    finally:
        zfs("destroy", f"{vol}@tmp")

    # Never written whole: holes under a changed indirect block (send_holes_without_birth_time)
    # and the free past the last block ever written may be marked; a touched block never
    # goes missing.
    thin = f"{root}/thin"
    tdev = make_volume(thin, size, sparse=True)
    write(tdev, 5 * G, pattern(5 * G, G))
    snapshot(f"{thin}@a")
    touched = touch(tdev, size)
    snapshot(f"{thin}@b")
    got = set(marked(changed_bitmap(f"{thin}@b", f"{thin}@a", size)))
    with pytest.raises(NotAncestor):  # another volume's bookmark
        changed_bitmap(f"{thin}@b", f"{vol}#s0", size)
    assert touched <= got, f"missing blocks {sorted(touched - got)}"
    summary_line(request, f"thin {size // MIB} MiB volume never written whole: "
                          f"{len(touched)} blocks touched, {len(got - touched)} extra marked "
                          f"of {size // G} ({sorted(got - touched)})")


def _timed(to: str, since: str, size: int, touched: list[int]) -> tuple[float, int]:
    """The bitmap's time and its count of marked blocks; every touched block is marked."""
    started = time.monotonic()
    bitmap = changed_bitmap(to, since, size)
    took = time.monotonic() - started
    missing = [b for b in touched if not bitmap[b // 8] & (0x80 >> b % 8)]
    assert missing == []
    return took, int.from_bytes(bitmap, "big").bit_count()


def _terabyte_volume(root: str) -> tuple[str, str, int]:
    """A 1 TiB thin volume written as a VM's disk is (its first MiB and its last 64 KiB, where
    a GPT disk keeps its backup header), snapshot @a: its name, device and size."""
    size = 1 << 40
    vol = f"{root}/tera"
    dev = make_volume(vol, size, sparse=True)
    write(dev, 0, pattern(0, MIB))
    write(dev, size - G, pattern(size - G, G))
    snapshot(f"{vol}@a")
    return vol, dev, size


def _write_megabytes(dev: str, offset: int, count: int) -> list[int]:
    """`count` MiB of incompressible bytes from `offset` (each MiB a rotation of one random
    MiB: distinct blocks, without asking the kernel for a GiB of randomness): the 64 KiB
    blocks touched."""
    chunk = os.urandom(MIB)
    for i in range(count):
        write(dev, offset + i * MIB, chunk[i:] + chunk[:i])
    return list(range(offset // G, (offset + count * MIB) // G))


def test_time_on_a_terabyte_thin_volume_follows_what_changed(request, root) -> None:
    """Printed, not asserted. The volume's first MiB and its last 64 KiB (where a GPT disk
    keeps its backup header) are written first, as on a VM's disk."""
    vol, dev, size = _terabyte_volume(root)
    for i in range(16):  # 1 MiB in 16 places, 64 GiB apart
        write(dev, i * 64 * 1024 * MIB + G, os.urandom(G))
    snapshot(f"{vol}@b")
    touched = _write_megabytes(dev, 100 * 1024 * MIB, 64)  # 64 MiB, at 100 GiB
    snapshot(f"{vol}@c")
    small, small_marked = _timed(f"{vol}@b", f"{vol}@a", size,
                                 [(i * 64 * 1024 * MIB + G) // G for i in range(16)])
    large, large_marked = _timed(f"{vol}@c", f"{vol}@b", size, touched)
    # Most of a thin volume is never-written holes, which ZFS 2.1 sends as FREE records under
    # every changed indirect block (send_holes_without_birth_time=1): marked, never missed.
    summary_line(request, f"1 TiB thin volume ({size // G} blocks): 1 MiB changed: "
                          f"{small:.2f} s ({small_marked} blocks marked); 64 MiB changed: "
                          f"{large:.2f} s ({large_marked} blocks marked)")


@pytest.mark.timeout(2400)
def test_time_for_a_gibibyte_changed_on_a_terabyte_thin_volume(request, root) -> None:
    """Printed, not asserted: the same volume with 1 GiB changed (16,384 blocks, at 200 GiB),
    every one of them marked."""
    real_more("CI times 1 MiB and 64 MiB changed on the same volume (the test above); a GiB "
              "of writes costs minutes in the emulated guest")
    vol, dev, size = _terabyte_volume(root)
    started = time.monotonic()
    touched = _write_megabytes(dev, 200 * 1024 * MIB, 1024)
    wrote = time.monotonic() - started
    snapshot(f"{vol}@b")
    took, marked_count = _timed(f"{vol}@b", f"{vol}@a", size, touched)
    summary_line(request, f"1 TiB thin volume ({size // G} blocks): 1 GiB changed: "
                          f"{took:.2f} s ({marked_count} blocks marked; {len(touched)} "
                          f"written, in {wrote:.0f} s)")
