"""What the warm server (plugin/server.py) does once, before it forks, so that no child does it
on each call: work that is the same for every call and would otherwise run again in every
fresh fork (a child's caches die with it). Measured in the emulated guest, in the first call of
a forked child (cProfile of Volume.snapshot): loguru's library directories 0.37 s, pyzfs's C
type strings parsed by pycparser 0.3 s; next to a 0.2 s `zfs snapshot`.

Nothing here opens a handle, a file or a socket a child would share: libzfs_core is never
initialised (only libnvpair's memory-only nvlist calls run), and no logging sink is added."""
from __future__ import annotations

#: The C types pyzfs names as strings (libzfs_core/_nvlist.py, _libzfs_core.py): cffi parses
#: each with pycparser the first time a process uses it, then caches it per FFI.
PYZFS_TYPES = ("uint64_t *", "uint_t *", "char[]", "char *", "char **", "char ***",
               "nvlist_t *", "nvlist_t **", "nvlist_t ***", "nvpair_t *", "boolean_t *",
               "boolean_t **", "uchar_t *", "uchar_t **", "int8_t *", "int8_t **",
               "uint8_t *", "uint8_t **", "int16_t *", "int16_t **", "uint16_t *",
               "uint16_t **", "int32_t *", "int32_t **", "uint32_t *", "uint32_t **",
               "int64_t *", "int64_t **", "uint64_t **", "boolean_t", "uchar_t", "int8_t",
               "uint8_t", "int16_t", "uint16_t", "int32_t", "uint32_t", "int64_t", "uint64_t")


def prepare() -> None:
    """Everything below, each part skipped where its library is missing."""
    loguru_library_dirs()
    pyzfs_types()


def loguru_library_dirs() -> None:
    """loguru computes the interpreter's library directories (sysconfig, for every install
    scheme) at each `logger.add`, for an answer that cannot change within a process: computed
    once, here, and kept (zfsaga/log.py adds two sinks per call)."""
    from functools import lru_cache

    try:
        from loguru import _better_exceptions
    except ImportError:
        return
    formatter = getattr(_better_exceptions, "ExceptionFormatter", None)
    compute = getattr(formatter, "_get_lib_dirs", None)
    if compute is None or hasattr(compute, "cache_info"):
        return  # another loguru than the one read (0.7), or done already
    cached = lru_cache(maxsize=1)(compute)
    cached()
    formatter._get_lib_dirs = staticmethod(cached)


def pyzfs_types() -> None:
    """Parse pyzfs's C type strings in every FFI it has, and run one nvlist both ways (what a
    channel program's answer goes through), so a child's first ZFS call parses nothing."""
    try:
        from libzfs_core import _nvlist
        from libzfs_core.bindings import libnvpair, libzfs_core
    except (ImportError, OSError):
        return
    for ffi in {id(b.ffi): b.ffi for b in (libnvpair, libzfs_core)}.values():
        for ctype in PYZFS_TYPES:
            try:
                ffi.typeof(ctype)
            except Exception:  # noqa: BLE001 - a type this FFI does not declare: nothing to warm
                pass
    sample = {b"s": b"v", b"n": 1, b"t": True, b"d": {b"x": b"y", b"m": 2}, b"l": [b"a", b"b"]}
    try:
        with _nvlist.nvlist_in(sample) as nvlist:
            _nvlist._nvlist_to_dict(nvlist, {})
    except Exception:  # noqa: BLE001 - a pyzfs that converts otherwise: its own cost, not an error
        pass
