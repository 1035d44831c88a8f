"""A ZFS send stream (OpenZFS 2.1's format), read record by record, and a volume's written and
freed byte ranges in it.

The format is OpenZFS's `dmu_replay_record_t` (include/sys/zfs_ioctl.h): a fixed 312-byte
record (a 4-byte type, a 4-byte payload length, a 304-byte union of the record kinds), each
followed by its payload: the data of a WRITE, the bonus buffer of an OBJECT, and so on. Every
record after BEGIN carries, in its last 32 bytes, the fletcher-4 of all the stream's bytes
before that field; the END record carries it again as the whole stream's checksum.

This reader keeps one record and one bounded chunk of payload in memory at a time: a stream
is read from a pipe as ZFS writes it, and what changed may be gigabytes. It refuses, with a
typed error (steps/zfs/errors.py), anything it does not know the meaning of: a record type, a
flag, a stream feature, a foreign byte order. The caller is a backup's changed-block list, and
there an error makes the backup tool copy the whole disk while a misread stream would make it
skip changed data without a word.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from zfsaga.steps.zfs import fletcher
from zfsaga.steps.zfs.errors import (StreamCorrupt, StreamTruncated, StreamUnsupported)

RECORD_SIZE = 312
#: Where a record's own checksum field starts: the last 32 bytes of the record.
CHECKSUM_AT = RECORD_SIZE - 32
#: A zvol's data object; object 2 is its properties' ZAP (volsize), not data.
ZVOL_OBJ = 1
#: DMU_OST_ZVOL: a send stream's objset type for a volume.
OBJSET_ZVOL = 3
#: A FREE's length meaning "to the end of the object" (DMU_OBJECT_END).
TO_THE_END = (1 << 64) - 1

MAGIC = 0x2F5BACBAC
SUBSTREAM = 1  # DMU_SUBSTREAM: one dataset's stream (2, a compound `send -R` package, is refused)

KINDS = ("BEGIN", "OBJECT", "FREEOBJECTS", "WRITE", "FREE", "END", "WRITE_BYREF", "SPILL",
         "WRITE_EMBEDDED", "OBJECT_RANGE", "REDACT")

# Stream features (drr_versioninfo bits 2..31) this reader knows the meaning of. Each changes
# only how a record's payload is encoded (its length is read from the record), or adds
# records this reader reads. Refused: DEDUPPROPS (a compound stream's), RESUMING (a resumed
# stream starts mid-object: earlier changes are not in it), REDACTED (changed data withheld),
# HOLDS (a `send -h` package's), and any bit not named here.
FEATURES_KNOWN = {
    1 << 0: "DEDUP",  # WRITE_BYREF records: a block written with another's data
    1 << 2: "SA_SPILL",
    1 << 16: "EMBED_DATA",
    1 << 17: "LZ4",
    1 << 19: "LARGE_BLOCKS",
    1 << 22: "COMPRESSED",
    1 << 23: "LARGE_DNODE",
    1 << 24: "RAW",
    1 << 25: "ZSTD",
    1 << 27: "SWITCH_TO_LARGE_BLOCKS",
}
# BEGIN's drr_flags: CLONE, CI_DATA, FREERECORDS, SPILL_BLOCK. None changes which blocks a
# record names.
BEGIN_FLAGS_KNOWN = 0b1111
# Per-record drr_flags: CHECKSUM_DEDUP (1), RAW_BYTESWAP (2), OBJECT_SPILL/SPILL_UNMODIFIED (4).
RECORD_FLAGS_KNOWN = {"OBJECT": 0b111, "WRITE": 0b11, "WRITE_BYREF": 0b1, "SPILL": 0b110,
                      "OBJECT_RANGE": 0b10}
EMBEDDED_TYPE_DATA = 0  # BP_EMBEDDED_TYPE_DATA: the only embedded block a volume's data has

# The union's layouts, native byte order, from offset 8 of the record (pads as 'x').
_BEGIN = struct.Struct("=QQQIIQQ256s")  # magic versioninfo creation type flags toguid fromguid toname
_END = struct.Struct("=4QQ")  # checksum[4] toguid
_OBJECT = struct.Struct("=QIIIIBBBBIQBBB5xQ")
_FREEOBJECTS = struct.Struct("=QQQ")  # firstobj numobjs toguid
# object type pad offset logical_size toguid cksumtype flags comptype pad2 key[40]
# compressed_size salt[8] iv[12] mac[16]
_WRITE = struct.Struct("=QI4xQQQBBB5x40xQ36x")
_FREE = struct.Struct("=QQQQ")  # object offset length toguid
_WRITE_BYREF = struct.Struct("=7QBB6x40x")
_SPILL = struct.Struct("=QQQBB6xQ36xI")  # object length toguid flags comptype pad csize ... type
_WRITE_EMBEDDED = struct.Struct("=QQQQBB6xII")  # object offset length toguid comp etype l p
_OBJECT_RANGE = struct.Struct("=QQQ36xB3x")  # firstobj numslots toguid salt iv mac flags
_REDACT = struct.Struct("=QQQQ")
_HEAD = struct.Struct("=II")  # drr_type, drr_payloadlen

#: The most payload held at once while it is summed and dropped.
CHUNK = 1 << 20


@dataclass(frozen=True)
class Begin:
    """A stream's BEGIN record: which dataset and which two points of its history."""

    features: int
    flags: int
    objset_type: int
    toguid: int
    fromguid: int
    toname: str


@dataclass(frozen=True)
class Record:
    """One record, as far as a reader of blocks needs it. `object` is the first object of a
    FREEOBJECTS or OBJECT_RANGE; `length` is a FREEOBJECTS' count of objects, a FREE's bytes
    (TO_THE_END: to the end of the object); `payload` the bytes that followed the record."""

    kind: str
    object: int = 0
    offset: int = 0
    length: int = 0
    payload: int = 0


def _round8(n: int) -> int:
    return (n + 7) & ~7


class _Source:
    """Exact reads from a file descriptor or a binary file, counting the bytes read."""

    def __init__(self, source: int | BinaryIO) -> None:
        self._fd = source if isinstance(source, int) else None
        self._file = None if isinstance(source, int) else source
        self.position = 0

    def read(self, size: int) -> bytes:
        """Up to `size` bytes: fewer only at the end of the stream."""
        parts, left = [], size
        while left:
            part = os.read(self._fd, left) if self._fd is not None else self._file.read(left)
            if not part:
                break
            parts.append(part)
            left -= len(part)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.position += len(data)
        return data


class SendStream:
    """The records of one send stream, read in order by `records()`. Every record after BEGIN
    must name BEGIN's snapshot (drr_toguid): a reader that lost its place in the stream reads
    a wrong guid long before it could misread a range. With `checksums` (the default), the
    running fletcher-4 is checked at every record and at END."""

    def __init__(self, source: int | BinaryIO, name: str = "send stream", *,
                 checksums: bool = True) -> None:
        self._in = _Source(source)
        self.name = name
        self.begin: Begin | None = None
        self._update = fletcher.update_function() if checksums else None
        self._sum = fletcher.ZERO

    # -- errors, each saying where ---------------------------------------------------------
    def _where(self, detail: str) -> str:
        return f"{detail} (at byte {self._in.position} of the stream)"

    def corrupt(self, detail: str) -> StreamCorrupt:
        return StreamCorrupt(self.name, self._where(detail))

    def unsupported(self, detail: str) -> StreamUnsupported:
        return StreamUnsupported(self.name, self._where(detail))

    # -- reading -----------------------------------------------------------------------------
    def _sum_in(self, data: bytes) -> None:
        if self._update is not None:
            self._sum = self._update(self._sum, data)

    def _header(self) -> bytes:
        data = self._in.read(RECORD_SIZE)
        if len(data) < RECORD_SIZE:
            where = "before its END record" if not data else "inside a record's header"
            raise StreamTruncated(self.name, self._where(f"the stream ended {where}"))
        return data

    def _skip(self, size: int, kind: str) -> None:
        """Read and sum `size` payload bytes, a bounded chunk at a time, keeping none."""
        while size:
            data = self._in.read(min(size, CHUNK))
            if not data:
                raise StreamTruncated(self.name, self._where(
                    f"the stream ended inside a {kind} record's payload"))
            self._sum_in(data)
            size -= len(data)

    def _check_record_sum(self, kind: str, stored: bytes) -> None:
        # OpenZFS's receive skips a zero field (streams older than per-record checksums); the
        # END record's own copy of the sum is checked in any case.
        if self._update is None or stored == bytes(32):
            return
        if struct.unpack("=4Q", stored) != self._sum:
            raise self.corrupt(f"checksum mismatch at a {kind} record")

    def records(self) -> Iterator[Record]:
        """Every record, BEGIN to END; then the stream must end."""
        header = self._header()
        self._sum_in(header)
        yield self._read_begin(header)
        while True:
            header = self._header()
            type_, payloadlen = _HEAD.unpack_from(header)
            if type_ >= len(KINDS) or type_ == 0:
                raise self.unsupported(f"record type {type_} is not one this reader knows"
                                       if type_ else "a second BEGIN record")
            kind = KINDS[type_]
            if payloadlen:
                raise self.unsupported(f"a {kind} record with drr_payloadlen {payloadlen}")
            before = self._sum
            self._sum_in(header[:CHECKSUM_AT])
            self._check_record_sum(kind, header[CHECKSUM_AT:])
            self._sum_in(header[CHECKSUM_AT:])
            record, toguid = self._decode(kind, header)
            if toguid != self.begin.toguid:
                raise self.corrupt(f"a {kind} record of another snapshot (toguid {toguid:#x}, "
                                   f"BEGIN's {self.begin.toguid:#x})")
            if kind == "END":
                self._finish(header, before)
                yield record
                return
            self._skip(record.payload, kind)
            yield record

    def _read_begin(self, header: bytes) -> Record:
        type_, payloadlen = _HEAD.unpack_from(header)
        if type_ != 0:
            raise self.corrupt(f"the first record is of type {type_}, not BEGIN")
        magic, versioninfo, _created, objset, flags, toguid, fromguid, toname = \
            _BEGIN.unpack_from(header, 8)
        if magic != MAGIC:
            if magic == int.from_bytes(MAGIC.to_bytes(8, "little"), "big"):
                raise self.unsupported("the stream is in the other byte order (made on a host "
                                       "of the other endianness)")
            raise self.corrupt(f"bad magic {magic:#x}: not a ZFS send stream")
        hdrtype, features = versioninfo & 0b11, (versioninfo >> 2) & ((1 << 30) - 1)
        if hdrtype != SUBSTREAM:
            raise self.unsupported(f"header type {hdrtype}: not a single dataset's stream")
        unknown = features & ~sum(FEATURES_KNOWN)
        if unknown:
            raise self.unsupported(f"stream features {unknown:#x} unknown to this reader")
        if flags & ~BEGIN_FLAGS_KNOWN:
            raise self.unsupported(f"BEGIN flags {flags & ~BEGIN_FLAGS_KNOWN:#x} unknown")
        self.begin = Begin(features, flags, objset, toguid, fromguid,
                           toname.split(b"\0", 1)[0].decode(errors="replace"))
        # A BEGIN payload (an nvlist: a raw stream's crypto parameters) is read past.
        self._skip(payloadlen, "BEGIN")
        return Record("BEGIN", payload=payloadlen)

    def _flags(self, kind: str, flags: int) -> None:
        if flags & ~RECORD_FLAGS_KNOWN[kind]:
            raise self.unsupported(f"{kind} flags {flags:#x} unknown to this reader")

    def _decode(self, kind: str, header: bytes) -> tuple[Record, int]:
        """The record and its drr_toguid."""
        if kind == "OBJECT":
            (obj, _t, _bt, _blksz, bonuslen, _ck, _comp, _slots, flags, raw_bonuslen, toguid,
             *_) = _OBJECT.unpack_from(header, 8)
            self._flags(kind, flags)
            return Record(kind, obj, payload=raw_bonuslen or _round8(bonuslen)), toguid
        if kind == "FREEOBJECTS":
            first, count, toguid = _FREEOBJECTS.unpack_from(header, 8)
            return Record(kind, first, length=count), toguid
        if kind == "WRITE":
            (obj, _t, offset, logical, toguid, _ck, flags, comptype,
             compressed) = _WRITE.unpack_from(header, 8)
            self._flags(kind, flags)
            payload = compressed if comptype else logical
            if comptype and not compressed:
                raise self.corrupt("a compressed WRITE record without a compressed size")
            return Record(kind, obj, offset, logical, payload), toguid
        if kind == "FREE":
            obj, offset, length, toguid = _FREE.unpack_from(header, 8)
            return Record(kind, obj, offset, length), toguid
        if kind == "WRITE_BYREF":
            obj, offset, length, toguid, *_refs, _ck, flags = _WRITE_BYREF.unpack_from(header, 8)
            self._flags(kind, flags)
            return Record(kind, obj, offset, length), toguid
        if kind == "SPILL":
            obj, length, toguid, flags, _comp, compressed, _t = _SPILL.unpack_from(header, 8)
            self._flags(kind, flags)
            return Record(kind, obj, length=length, payload=compressed or length), toguid
        if kind == "WRITE_EMBEDDED":
            obj, offset, length, toguid, _comp, etype, _lsize, psize = \
                _WRITE_EMBEDDED.unpack_from(header, 8)
            if etype != EMBEDDED_TYPE_DATA:
                raise self.unsupported(f"an embedded block of type {etype}")
            return Record(kind, obj, offset, length, _round8(psize)), toguid
        if kind == "OBJECT_RANGE":
            first, slots, toguid, flags = _OBJECT_RANGE.unpack_from(header, 8)
            self._flags(kind, flags)
            return Record(kind, first, length=slots), toguid
        if kind == "REDACT":
            obj, offset, length, toguid = _REDACT.unpack_from(header, 8)
            return Record(kind, obj, offset, length), toguid
        end = _END.unpack_from(header, 8)
        return Record(kind), end[4]

    def _finish(self, header: bytes, before: fletcher.Sum) -> None:
        """END: its checksum is the whole stream's before it; nothing may follow it."""
        if self._update is not None and _END.unpack_from(header, 8)[:4] != before:
            raise self.corrupt("the END record's checksum does not match the stream's")
        if self._in.read(1):
            raise self.corrupt("bytes after the END record")


@dataclass(frozen=True)
class Change:
    """A byte range of a volume written or freed between the stream's two points. `length`
    None: from `offset` to the end of the volume."""

    offset: int
    length: int | None
    freed: bool = False


def volume_changes(stream: SendStream) -> Iterator[Change]:
    """Every range of a volume's data written (WRITE, WRITE_EMBEDDED, WRITE_BYREF) or freed
    (FREE, and a FREEOBJECTS that takes the data object: all of it) in the stream, in stream
    order, once the stream has been read to its END without error. Ranges are yielded as read;
    a caller must treat its result as void if the iteration raises."""
    for record in stream.records():
        kind = record.kind
        if kind == "BEGIN":
            if stream.begin.objset_type != OBJSET_ZVOL:
                raise stream.unsupported(f"a stream of objset type {stream.begin.objset_type}, "
                                         f"not a volume")
        elif kind == "REDACT":
            # The range changed but its data was withheld: the stream cannot say which
            # blocks of it, and this reader never guesses.
            raise stream.unsupported("a REDACT record: a redacted stream")
        elif kind == "FREEOBJECTS":
            if record.object <= ZVOL_OBJ < record.object + record.length:
                yield Change(0, None, freed=True)
        elif record.object != ZVOL_OBJ:
            continue  # object 2 (the volume's properties), other metadata: not data
        elif kind in ("WRITE", "WRITE_EMBEDDED", "WRITE_BYREF"):
            yield Change(record.offset, record.length)
        elif kind == "FREE":
            to_end = record.length == TO_THE_END or record.offset + record.length > TO_THE_END
            yield Change(record.offset, None if to_end else record.length, freed=True)
        # OBJECT, SPILL, OBJECT_RANGE of the data object: its dnode, not its data.
