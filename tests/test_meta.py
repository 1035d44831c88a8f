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
    (found by hypothesis: a key whose hex form passed ZFS's 255 but not the layer's 200)."""
    stored = meta.encode(value)
    try:
        prop = meta.key_prop(key)
    except InvalidValue:
        assert len("org.zfsaga.x:" + key.encode().hex()) > meta.MAX_PROP_NAME
        return
    assert is_user_prop(prop) and check_props({prop: stored}) == {prop: stored}
    assert meta.keys_of({prop: stored, "org.zfsaga:name": "x"}) == {key: value}


def test_plain_keys_and_values_stay_readable() -> None:
    assert meta.key_prop("vdi-type") == "org.zfsaga.k:vdi-type"
    assert meta.encode("user") == "user"
    assert meta.encode("a\tb").startswith("b64:") and meta.decode(meta.encode("a\tb")) == "a\tb"
    assert meta.decode(meta.encode("b64:Zm9v")) == "b64:Zm9v"  # never mistaken for encoded


def test_what_zfs_cannot_hold_is_refused() -> None:
    with pytest.raises(InvalidValue):
        meta.encode("x" * 8192)
    with pytest.raises(InvalidValue):
        meta.key_prop("k" * 200 + "É")
    with pytest.raises(InvalidValue):
        meta.key_prop("")
