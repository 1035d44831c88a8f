"""Fletcher-4, the running checksum of a ZFS send stream, computed incrementally.

A send stream's every record carries the fletcher-4 of all the stream's bytes before its
checksum field, payloads included, so checking it means summing every payload byte. In pure
Python that is some 80 ms per MiB (one interpreter step per 32-bit word): a 1 GiB change would
take minutes. OpenZFS's own libzfs exports the function its `zstream` uses, at memory speed, so
the sum is taken there when the library loads (every host with ZFS has it), and in Python only
where it does not (tests/test_stream.py holds the two to the same answers).
"""
from __future__ import annotations

import ctypes
import struct
from typing import Callable

_MASK = (1 << 64) - 1
Sum = tuple[int, int, int, int]
ZERO: Sum = (0, 0, 0, 0)
#: libzfs by soname (OpenZFS 2.1's first, then a later one's): tried in turn, no `ldconfig -p`
#: process as ctypes.util.find_library would run.
SONAMES = ("libzfs.so.4", "libzfs.so.6", "libzfs.so")


def python_update(state: Sum, data: bytes) -> Sum:
    """Fletcher-4 of `state` followed by `data`, native-endian 32-bit words (a trailing
    fraction of a word is left out, as OpenZFS leaves it out)."""
    a, b, c, d = state
    usable = len(data) - len(data) % 4
    for (word,) in struct.iter_unpack("=I", data[:usable]):
        a = (a + word) & _MASK
        b = (b + a) & _MASK
        c = (c + b) & _MASK
        d = (d + c) & _MASK
    return a, b, c, d


def _libzfs_update() -> Callable[[Sum, bytes], Sum] | None:
    """libzfs's fletcher_4_incremental_native as an update function, or None without libzfs."""
    for soname in SONAMES:
        try:
            lib = ctypes.CDLL(soname)
            native = lib.fletcher_4_incremental_native
            init = lib.fletcher_4_init
            break
        except (OSError, AttributeError):
            continue
    else:
        return None
    # Chooses the implementation (SIMD or scalar); without it the "fastest" slot is empty.
    init.restype = None
    init()
    native.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
    native.restype = ctypes.c_int

    def update(state: Sum, data: bytes) -> Sum:
        words = (ctypes.c_uint64 * 4)(*state)
        if data:
            native(data, len(data), words)
        return words[0], words[1], words[2], words[3]

    return update


_FAST: list = []


def update_function() -> Callable[[Sum, bytes], Sum]:
    """The fastest update function this host has: libzfs's, loaded once, else Python's."""
    if not _FAST:
        _FAST.append(_libzfs_update() or python_update)
    return _FAST[0]
