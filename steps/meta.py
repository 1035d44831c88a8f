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


def key_prop(key: str) -> str:
    """The user property that holds xapi's key `key`."""
    if not isinstance(key, str) or not key:
        raise InvalidValue(repr(key), "a metadata key is a non-empty string")
    prop = _PLAIN + key if _SAFE_KEY.fullmatch(key) else _HEX + key.encode().hex()
    if len(prop) > MAX_PROP_NAME:
        raise InvalidValue(key[:40], "metadata key too long for a ZFS property name")
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
    plain = value.isprintable() and not value.startswith(_ENCODED)
    if plain:
        stored = value
    else:
        import base64  # only values that need it: a read-only call's start stays lean

        stored = _ENCODED + base64.b64encode(value.encode()).decode()
    if len(stored.encode()) > MAX_USER_VALUE:
        raise InvalidValue(value[:40], f"metadata value longer than ZFS allows "
                                       f"({MAX_USER_VALUE} bytes once stored)")
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
    """xapi's keys among an object's local user properties, decoded."""
    out = {}
    for prop, stored in props.items():
        key = prop_key(prop)
        if key is not None:
            out[key] = decode(stored)
    return out
