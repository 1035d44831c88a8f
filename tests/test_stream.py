"""The send-stream parser (steps/zfs/stream.py) on streams real ZFS made (tests/fixtures/
streams/, made in the guest by tests/stream_fixtures.py), each held to `zstream dump -v`'s
listing of the same stream; the same streams corrupted, truncated, or carrying what the
parser does not know (each a typed error, never "no change"); and the reading of a send
through a pipe from a thread (steps/zfs/send.py) with a stand-in for lzc_send."""
from __future__ import annotations

import json
import re
import struct
import sys
import types
from pathlib import Path

import pytest

from zfsaga.steps.zfs import fletcher, stream as st
from zfsaga.steps.zfs.changed import GRANULARITY, changed_blocks, marked
from zfsaga.steps.zfs.errors import (NotAncestor, StreamCorrupt, StreamError, StreamTruncated,
                                     StreamUnsupported)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "streams"
META = json.loads((FIXTURES / "changes.json").read_text())
STREAMS = sorted(META["streams"])
INCREMENTAL = [n for n in STREAMS if META["streams"][n]["since"]]


def raw(name: str) -> bytes:
    return (FIXTURES / f"{name}.zstream").read_bytes()


def parse(data: bytes, **kw) -> list[st.Record]:
    import io

    return list(st.SendStream(io.BytesIO(data), "fixture", **kw).records())


def changes_of(data: bytes) -> list[st.Change]:
    import io

    return list(st.volume_changes(st.SendStream(io.BytesIO(data), "fixture")))


# -- zstream dump's listing -------------------------------------------------------------------
_FIELD = re.compile(r"(\w+) = (-?[0-9a-fx]+)")


def dumped(name: str) -> tuple[list[tuple], str]:
    """(kind, object, offset, length, payload) per record as `zstream dump -v` printed them,
    and END's checksum as it printed it."""
    out, end_sum = [], None
    for line in (FIXTURES / f"{name}.dump").read_text().splitlines():
        kind = line.split(" ", 1)[0]
        f = dict(_FIELD.findall(line))
        num = lambda k: int(f[k])  # noqa: E731
        if line == "BEGIN record":
            out.append(("BEGIN", 0, 0, 0))
        elif kind == "OBJECT":
            out.append((kind, num("object"), 0, 0))
        elif kind == "FREEOBJECTS":
            out.append((kind, num("firstobj"), 0, num("numobjs")))
        elif kind == "WRITE":
            out.append((kind, num("object"), num("offset"), num("logical_size"),
                        num("payload_size")))
        elif kind in ("WRITE_EMBEDDED", "WRITE_BYREF"):
            out.append((kind, num("object"), num("offset"), num("length")))
        elif kind == "FREE":
            out.append((kind, num("object"), num("offset"), num("length") % (1 << 64)))
        elif kind == "SPILL":
            out.append((kind, num("object"), 0, num("length")))
        elif kind == "END":
            out.append(("END", 0, 0, 0))
            end_sum = line.split(" = ", 1)[1].strip()
    return out, end_sum


def listed(records: list[st.Record]) -> list[tuple]:
    out = []
    for r in records:
        row = (r.kind, r.object, r.offset, r.length)
        out.append(row + (r.payload,) if r.kind == "WRITE" else row)
    return out


@pytest.mark.parametrize("name", STREAMS)
def test_the_parser_reads_every_record_zstream_dump_lists(name) -> None:
    records = parse(raw(name))
    expected, end_sum = dumped(name)
    assert len(expected) > 3
    assert listed(records) == expected
    stored = struct.unpack_from("=4Q", raw(name), len(raw(name)) - st.RECORD_SIZE + 8)
    assert "/".join(f"{w:x}" for w in stored) == end_sum


def test_the_fixtures_hold_every_kind_the_volume_changes_make() -> None:
    kinds = {r.kind for n in STREAMS for r in parse(raw(n))}
    assert {"BEGIN", "OBJECT", "FREEOBJECTS", "WRITE", "FREE", "WRITE_EMBEDDED",
            "END"} <= kinds
    compressed = [r for r in parse(raw("inc-all")) if r.kind == "WRITE" and r.payload < r.length]
    assert compressed, "a compressed WRITE: its payload is drr_compressed_size"


@pytest.mark.parametrize("name", INCREMENTAL)
def test_the_changed_blocks_of_a_volume_written_whole_are_exactly_those_touched(name) -> None:
    size = META["size"]
    touched = set()
    for c in META["changes"]:
        touched.update(range(c["offset"] // GRANULARITY,
                             -(-(c["offset"] + c["length"]) // GRANULARITY)))
    bitmap = changed_blocks(changes_of(raw(name)), size)
    assert len(bitmap) == -(-size // GRANULARITY // 8)
    assert set(marked(bitmap)) == touched


def test_the_python_checksum_and_libzfs_agree(monkeypatch) -> None:
    fast = fletcher.update_function()
    if fast is fletcher.python_update:
        pytest.fail("libzfs's fletcher_4 did not load on this host (libzfs4linux)")
    data = raw("inc-plain")
    for cut in (0, 4, 312, 4096, len(data) - len(data) % 4):
        assert fast((1, 2, 3, 4), data[:cut]) == fletcher.python_update((1, 2, 3, 4), data[:cut])
    monkeypatch.setattr(fletcher, "_FAST", [fletcher.python_update])
    assert listed(parse(data)) == listed(parse(data, checksums=False))
    with pytest.raises(StreamCorrupt, match="checksum"):
        parse(_flip(data, _payload_at(data, "WRITE")))


# -- corrupt, truncated, unknown --------------------------------------------------------------
def _positions(data: bytes) -> list[tuple[int, st.Record]]:
    at, out = 0, []
    for r in parse(data):
        out.append((at, r))
        at += st.RECORD_SIZE + r.payload
    return out


def _payload_at(data: bytes, kind: str) -> int:
    return next(at + st.RECORD_SIZE for at, r in _positions(data) if r.kind == kind and r.payload)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def _reseal(data: bytearray, positions: list[tuple[int, st.Record]]) -> bytes:
    """Recompute every record's checksum (and END's) after an edit of headers, so a test
    shows the parser refusing the edit for its meaning, not for its checksum."""
    total = fletcher.ZERO
    for at, r in positions:
        if r.kind != "BEGIN":
            if r.kind == "END":
                data[at + 8:at + 40] = struct.pack("=4Q", *total)
            total = fletcher.python_update(total, bytes(data[at:at + st.CHECKSUM_AT]))
            data[at + st.CHECKSUM_AT:at + st.RECORD_SIZE] = struct.pack("=4Q", *total)
            total = fletcher.python_update(total, bytes(data[at + st.CHECKSUM_AT:
                                                             at + st.RECORD_SIZE]))
        else:
            total = fletcher.python_update(total, bytes(data[at:at + st.RECORD_SIZE]))
        end = at + st.RECORD_SIZE + r.payload
        total = fletcher.python_update(total, bytes(data[at + st.RECORD_SIZE:end]))
    return bytes(data)


def edited(name: str, kind: str, edit) -> bytes:
    """The fixture with `edit(buffer, position)` applied to the first `kind` record's header
    (kind "BEGIN": the stream's first record), checksums resealed."""
    data = bytearray(raw(name))
    positions = _positions(bytes(data))
    at = next(at for at, r in positions if r.kind == kind)
    edit(data, at)
    return _reseal(data, positions)


def test_resealing_an_unedited_stream_changes_nothing() -> None:
    assert edited("inc-all", "WRITE", lambda d, at: None) == raw("inc-all")


def _set(fmt: str, offset: int, value: int):
    return lambda d, at: struct.pack_into(fmt, d, at + offset, value)


REFUSED = {
    # BEGIN: versioninfo at 16 (hdrtype in bits 0-1, features from bit 2), type at 32,
    # flags at 36
    "unknown feature": ("BEGIN", lambda d, at: struct.pack_into(
        "=Q", d, at + 16, struct.unpack_from("=Q", d, at + 16)[0] | (1 << (28 + 2))),
        StreamUnsupported, "features"),
    "redacted feature": ("BEGIN", lambda d, at: struct.pack_into(
        "=Q", d, at + 16, struct.unpack_from("=Q", d, at + 16)[0] | (1 << (21 + 2))),
        StreamUnsupported, "features"),
    "resuming feature": ("BEGIN", lambda d, at: struct.pack_into(
        "=Q", d, at + 16, struct.unpack_from("=Q", d, at + 16)[0] | (1 << (20 + 2))),
        StreamUnsupported, "features"),
    "compound stream": ("BEGIN", lambda d, at: struct.pack_into(
        "=Q", d, at + 16, (struct.unpack_from("=Q", d, at + 16)[0] & ~3) | 2),
        StreamUnsupported, "header type"),
    "unknown BEGIN flag": ("BEGIN", _set("=I", 36, 1 << 5), StreamUnsupported, "BEGIN flags"),
    "bad magic": ("BEGIN", _set("=Q", 8, 0x1234), StreamCorrupt, "magic"),
    "other byte order": ("BEGIN", _set("=Q", 8, int.from_bytes(
        st.MAGIC.to_bytes(8, "little"), "big")), StreamUnsupported, "byte order"),
    "unknown record type": ("WRITE", _set("=I", 0, 11), StreamUnsupported, "record type 11"),
    "a second BEGIN": ("WRITE", _set("=I", 0, 0), StreamUnsupported, "second BEGIN"),
    "a payload length on a WRITE": ("WRITE", _set("=I", 4, 8), StreamUnsupported,
                                    "payloadlen"),
    "unknown WRITE flag": ("WRITE", _set("=B", 8 + 41, 0x80), StreamUnsupported, "WRITE flags"),
    "unknown OBJECT flag": ("OBJECT", _set("=B", 8 + 27, 0x40), StreamUnsupported,
                            "OBJECT flags"),
    "a record of another snapshot": ("FREE", _set("=Q", 8 + 24, 12345), StreamCorrupt,
                                     "another snapshot"),
    "a REDACT record": ("FREE", _set("=I", 0, 10), StreamUnsupported, "REDACT"),
    "a non-data embedded block": ("WRITE_EMBEDDED", _set("=B", 8 + 33, 2), StreamUnsupported,
                                  "embedded block of type"),
    "a filesystem's stream": ("BEGIN", _set("=I", 32, 2), StreamUnsupported, "not a volume"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_the_parser_does_not_know_is_a_typed_error_never_no_change(case) -> None:
    kind, edit, error, words = REFUSED[case]
    data = edited("inc-all", kind, edit)
    with pytest.raises(error, match=words) as caught:
        changes_of(data)
    assert isinstance(caught.value, StreamError) and "at byte" in str(caught.value)


def test_a_freeobjects_taking_the_data_object_marks_the_whole_volume() -> None:
    data = edited("inc-all", "FREEOBJECTS", lambda d, at: struct.pack_into("=QQ", d, at + 8,
                                                                            0, 5))
    bitmap = changed_blocks(changes_of(data), META["size"])
    assert marked(bitmap) == list(range(META["size"] // GRANULARITY))


def test_a_flipped_bit_anywhere_is_corruption() -> None:
    data = raw("inc-all")
    positions = _positions(data)
    write_at = next(at for at, r in positions if r.kind == "WRITE")
    spots = {"header": write_at + 8 + 16, "payload": _payload_at(data, "WRITE"),
             "END's sum": len(data) - st.RECORD_SIZE + 8,
             "last record's sum": len(data) - 1}
    for where, at in spots.items():
        with pytest.raises(StreamCorrupt, match="checksum"):
            changes_of(_flip(data, at))


def test_a_truncated_stream_is_an_error_at_every_cut() -> None:
    data = raw("inc-all")
    cuts = {0, 1, st.RECORD_SIZE - 1, st.RECORD_SIZE, len(data) - st.RECORD_SIZE,
            len(data) - 1}
    cuts.add(_payload_at(data, "WRITE") + 3)
    cuts.update(at for at, _ in _positions(data))
    for cut in sorted(cuts):
        with pytest.raises(StreamTruncated):
            changes_of(data[:cut])


def test_bytes_after_the_end_record_are_corruption() -> None:
    with pytest.raises(StreamCorrupt, match="after the END"):
        changes_of(raw("inc-all") + b"\0")


def test_a_payload_is_never_held_whole(monkeypatch) -> None:
    """The reader asks its source for at most a record or a chunk at a time."""
    import io

    asked = []

    class Spy(io.BytesIO):
        def read(self, size=-1):
            asked.append(size)
            return super().read(size)

    monkeypatch.setattr(st, "CHUNK", 1024)
    list(st.volume_changes(st.SendStream(Spy(raw("inc-plain")), "spy")))
    assert max(asked) <= 1024 and -1 not in asked


# -- the send through a pipe (steps/zfs/send.py), lzc_send stood in for ----------------------
@pytest.fixture
def fake_lzc(monkeypatch):
    """A libzfs_core whose lzc_send writes what the test says into the descriptor."""
    exceptions = types.ModuleType("libzfs_core.exceptions")

    class ZFSError(Exception):
        errno = None

    class SnapshotMismatch(ZFSError):
        errno = 18

    class StreamIOError(ZFSError):
        def __init__(self, errno_):
            self.errno = errno_

    for cls in (ZFSError, SnapshotMismatch, StreamIOError):
        setattr(exceptions, cls.__name__, cls)
    for missing in ("SnapshotIsCloned", "SnapshotIsHeld", "NotClone", "HoldNotFound",
                    "NameInvalid", "NameTooLong", "PoolsDiffer", "WrongParent",
                    "DuplicateSnapshots", "PropertyInvalid", "PropertyNotSupported",
                    "DatasetTypeInvalid", "ZFSInitializationFailed", "SuspendedPool",
                    "ReadOnlyPool", "MultipleOperationsFailure"):
        setattr(exceptions, missing, type(missing, (ZFSError,), {}))
    module = types.ModuleType("libzfs_core")
    module.exceptions = exceptions
    calls = []

    def lzc_send(snap, since, fd, flags):
        import os

        calls.append((snap, since, flags))
        what = module.stream
        if isinstance(what, BaseException):
            raise what
        try:
            os.write(fd, what)
        except BrokenPipeError:
            raise StreamIOError(32) from None

    module.lzc_send = lzc_send
    module.calls = calls
    monkeypatch.setitem(sys.modules, "libzfs_core", module)
    monkeypatch.setitem(sys.modules, "libzfs_core.exceptions", exceptions)
    return module


def test_read_changes_parses_what_lzc_send_writes(fake_lzc) -> None:
    from zfsaga.steps.zfs import send

    fake_lzc.stream = raw("inc-bookmark")
    bitmap = send.changed_bitmap("p/v@b", "p/v#a", META["size"])
    assert bitmap == changed_blocks(changes_of(raw("inc-bookmark")), META["size"])
    assert fake_lzc.calls == [(b"p/v@b", b"p/v#a", ["large_blocks", "embedded_data",
                                                     "compress"])]


def test_a_failed_send_is_its_typed_error_not_a_truncated_stream(fake_lzc) -> None:
    from zfsaga.steps.zfs import send

    fake_lzc.stream = fake_lzc.exceptions.SnapshotMismatch()
    with pytest.raises(NotAncestor):
        send.changed_bitmap("p/v@a", "p/v@b", META["size"])


def test_a_refused_stream_is_the_parsers_error_and_the_sender_returns(fake_lzc) -> None:
    """The reader stops at a bad record; the sender's write then fails (EPIPE) and is not
    the error reported."""
    from zfsaga.steps.zfs import send

    fake_lzc.stream = edited("inc-all", "WRITE", _set("=I", 0, 11)) + bytes(4 << 20)
    with pytest.raises(StreamUnsupported, match="record type 11"):
        send.changed_bitmap("p/v@b", "p/v@a", META["size"])


def test_a_bad_window_is_refused_before_any_send(fake_lzc) -> None:
    from zfsaga.steps.zfs import send
    from zfsaga.steps.zfs.errors import InvalidValue

    fake_lzc.stream = raw("inc-all")
    with pytest.raises(InvalidValue):
        send.changed_bitmap("p/v@b", "p/v@a", META["size"], offset=META["size"] + 1)
    assert fake_lzc.calls == []
