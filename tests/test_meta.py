"""xapi's metadata as ZFS user properties: every key and value round-trips, whatever it holds,
and what ZFS cannot hold is refused before any call."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zfsaga.steps import meta
from zfsaga.steps.zfs.errors import InvalidValue
from zfsaga.steps.zfs.interface import check_props, is_user_prop


@settings(derandomize=True, max_examples=300)  # the same examples in every CI run
@given(st.text(min_size=1, max_size=100), st.text(max_size=300))
def test_any_key_and_value_round_trip_through_valid_zfs_properties(key: str, value: str) -> None:
    """Every key either becomes a property the layer accepts, or is refused as too long
    (found by hypothesis: a key whose hex form passed ZFS's 255 but not the layer's 200), or
    holds NUL or a lone surrogate, which no property can carry (issue 18)."""
    def unstorable(text: str) -> bool:
        return "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)

    try:
        stored = meta.encode(value)
    except InvalidValue:
        assert unstorable(value)
        return
    try:
        prop = meta.key_prop(key)
    except InvalidValue:
        assert unstorable(key) or len("org.zfsaga.x:" + key.encode().hex()) > meta.MAX_PROP_NAME
        return
    assert is_user_prop(prop) and check_props({prop: stored}) == {prop: stored}
    assert meta.keys_of({prop: stored, "org.zfsaga:name": "x"}) == {key: value}


def test_plain_keys_and_values_stay_readable() -> None:
    assert meta.key_prop("vdi-type") == "org.zfsaga.k:vdi-type"
    assert meta.encode("user") == "user"
    assert meta.encode("a\tb").startswith("b64:") and meta.decode(meta.encode("a\tb")) == "a\tb"
    assert meta.decode(meta.encode("b64:Zm9v")) == "b64:Zm9v"  # never mistaken for encoded


def test_what_zfs_cannot_hold_is_refused() -> None:
    assert meta.encode("x" * 8191) == "x" * 8191  # ZFS's limit: 8,191 bytes stored
    with pytest.raises(InvalidValue):
        meta.encode("x" * 8192)
    assert meta.decode(meta.encode("\n" * 6138)) == "\n" * 6138  # 8,188 bytes of base64
    with pytest.raises(InvalidValue):
        meta.encode("\n" * 6139)
    for bad in ("a\x00b", "\ud800", "x\udfffy"):
        with pytest.raises(InvalidValue):
            meta.encode(bad)
        with pytest.raises(InvalidValue):
            meta.key_prop(bad)
    with pytest.raises(InvalidValue):
        meta.key_prop("k" * 200 + "É")
    with pytest.raises(InvalidValue):
        meta.key_prop("")
