"""How xapi's metadata lives on ZFS: as local user properties of the dataset (or snapshot) it
describes, so the pool carries it to another host and an `SR.ls` after a re-import gives xapi
everything sr-scan needs.

xapi's keys and values are arbitrary strings; ZFS property names are lowercase [a-z0-9_.:-] and
`zfs get -H` output cannot carry a tab or a newline. So, reversibly:
- a key that is already a safe lowercase name is stored as `org.zfsaga.k:<key>`; any other as
  `org.zfsaga.x:<hex of its UTF-8>`;
- a value of printable characters is stored as it is; any other (or one that would read as
  encoded) as `b64:<base64 of its UTF-8>`.
The name and description of a volume or SR have fixed properties of their own.

Every string that reaches a property passes here, so every one round-trips exactly (what
`zfs get` prints holds no tab nor newline, nor any other line or record separator: those are
encoded). Two kinds of string are refused, up front (InvalidValue, Invalid_argument to xapi):
one holding NUL (ZFS's strings end at it) and one holding a lone surrogate (not Unicode text,
no UTF-8 for it). ZFS holds a user property value of at most 8,191 bytes (ZAP_MAXVALUELEN,
8,192 with its terminating NUL): printable text up to 8,191 bytes of UTF-8, encoded text up
to 6,138 (base64 makes 4 of each 3, after its 4-character prefix).
The SR's uuid is not encoded: it must be a canonical UUID (`check_sr_uuid`).
"""
from __future__ import annotations

import re

from zfsaga.steps.zfs.errors import InvalidValue
from zfsaga.steps.zfs.interface import MAX_USER_VALUE

KEY = "org.zfsaga:key"            # a volume's key (its identity for xapi; never changes)
NAME = "org.zfsaga:name"
DESCRIPTION = "org.zfsaga:description"
SR_UUID = "org.zfsaga:sr-uuid"    # the uuid xapi gave SR.create
PROVISIONING = "org.zfsaga:provisioning"
VOLBLOCKSIZE = "org.zfsaga:volblocksize"  # the SR's block size for new volumes (bytes)
#: The ownership tag, a user property set at creation: "<saga id>/<step name>" (steps/base.py
#: says what it proves).
OWNER = "org.zfsaga:saga"
#: Marks a dataset a saga retired but could not destroy (others depend on it): hidden, kept.
RETIRED = "org.zfsaga:retired"
#: The SR's index of snapshots living away from home, one property per snapshot
#: (steps/index.py keeps it). Named here, beside the other marks, so a read finds a key
#: without loading the step machinery.
INDEX_PREFIX = "org.zfsaga:at:"
#: A volume's changed block tracking, "on" when enabled (Volume.enable_cbt): a user property
#: of the volume, so its snapshots inherit it and the pool carries it through an export.
CBT = "org.zfsaga:cbt"
#: The SR's metadata-only VDIs (Volume.data_destroy), one property per VDI keyed as the index
#: is: the snapshot's metadata (a bookmark holds no user property) and its bookmark's guid.
METADATA_PREFIX = "org.zfsaga:md:"
_PLAIN = "org.zfsaga.k:"
_HEX = "org.zfsaga.x:"
_SAFE_KEY = re.compile(r"[a-z0-9_][a-z0-9_.-]*")
_ENCODED = "b64:"
#: The layer's rule for a property name component (names._COMPONENT: 200 characters), stricter
#: than ZFS's 255.
MAX_PROP_NAME = 200


def index_prop(key: str) -> str:
    """The SR property that says where the snapshot `key` (`<volume key>@<uuid>`) lives."""
    volume, _, snap = key.partition("@")
    return f"{INDEX_PREFIX}{volume}.{snap}"


def metadata_prop(key: str) -> str:
    """The SR property that holds the metadata-only VDI `key` (`<volume key>@<uuid>`)."""
    volume, _, snap = key.partition("@")
    return f"{METADATA_PREFIX}{volume}.{snap}"


#: The longest text a value encoded in base64 can be, in UTF-8 bytes (see the docstring).
MAX_ENCODED_TEXT = (MAX_USER_VALUE - len("b64:")) // 4 * 3
_SR_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_sr_uuid(uuid: object) -> str:
    """The uuid xapi gives SR.create (and SR.attach's sr_uuid) as a canonical, lowercase UUID:
    it is stored as it is and compared as it is. Uppercase is refused, not folded: xapi writes
    lowercase, and an SR that reported another spelling than the one it was given would not
    be the same SR to a probe."""
    if not isinstance(uuid, str) or not _SR_UUID.fullmatch(uuid):
        raise InvalidValue(ascii(uuid)[:60], "an SR's uuid is a canonical lowercase UUID, "
                                             "8-4-4-4-12 hexadecimal digits")
    return uuid


def _utf8(text: str, what: str) -> bytes:
    """The UTF-8 of a string bound for a property: InvalidValue for NUL or a lone surrogate."""
    if "\x00" in text:
        raise InvalidValue(ascii(text[:40]), f"a metadata {what} cannot hold NUL: ZFS strings "
                                             f"end at it")
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise InvalidValue(ascii(text[:40]), f"a metadata {what} holds a lone surrogate: not "
                                             f"Unicode text") from None


def key_prop(key: str) -> str:
    """The user property that holds xapi's key `key`."""
    if not isinstance(key, str) or not key:
        raise InvalidValue(repr(key), "a metadata key is a non-empty string")
    raw = _utf8(key, "key")
    prop = _PLAIN + key if _SAFE_KEY.fullmatch(key) else _HEX + raw.hex()
    if len(prop) > MAX_PROP_NAME:
        raise InvalidValue(ascii(key[:40]), f"metadata key too long for a ZFS property name "
                                            f"(at most {MAX_PROP_NAME - len(_PLAIN)} "
                                            f"characters of [a-z0-9_.-], or "
                                            f"{(MAX_PROP_NAME - len(_HEX)) // 2} bytes of UTF-8)")
    return prop


def prop_key(prop: str) -> str | None:
    """xapi's key for a user property, or None when the property is not one of its keys."""
    if prop.startswith(_PLAIN):
        return prop[len(_PLAIN):]
    if prop.startswith(_HEX):
        try:
            return bytes.fromhex(prop[len(_HEX):]).decode()
        except ValueError:
            return None
    return None


def encode(value: str) -> str:
    """A value as a ZFS user property can hold it; InvalidValue past ZFS's length limit."""
    if not isinstance(value, str):
        raise InvalidValue(repr(value)[:40], "a metadata value is a string")
    raw = _utf8(value, "value")
    # isprintable() is false for every control (C0, DEL, C1), separator (\x85, \u2028,
    # \u2029) and format character (RTL marks): all that a line-wise read could split on.
    plain = value.isprintable() and not value.startswith(_ENCODED)
    if plain:
        stored = value
    else:
        import base64  # only values that need it: a read-only call's start stays lean

        stored = _ENCODED + base64.b64encode(raw).decode()
    if len(stored.encode()) > MAX_USER_VALUE:
        raise InvalidValue(ascii(value[:40]), f"metadata value longer than ZFS holds: "
                                              f"{MAX_USER_VALUE} bytes of UTF-8 of printable "
                                              f"text, {MAX_ENCODED_TEXT} of text with control "
                                              f"or separator characters (stored encoded)")
    return stored


def decode(stored: str) -> str:
    if stored.startswith(_ENCODED):
        import base64

        try:
            return base64.b64decode(stored[len(_ENCODED):], validate=True).decode()
        except ValueError:
            return stored  # not ours to interpret: shown as it is
    return stored


def keys_of(props: dict[str, str]) -> dict[str, str]:
    """xapi's keys among an object's local user properties, decoded, by key: in no order the
    read gave them (a channel program's answer has none), so every read answers alike."""
    out = {}
    for prop, stored in props.items():
        key = prop_key(prop)
        if key is not None:
            out[key] = decode(stored)
    return dict(sorted(out.items()))
