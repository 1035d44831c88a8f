"""Every string xapi hands zfsaga that reaches a ZFS property round-trips exactly, whatever it
holds, and what ZFS cannot hold is refused up front (issue 18, defect 5).

- The SR's uuid is stored as it is, so it must be a canonical lowercase UUID: anything else
  (empty, a line or record separator, uppercase, a stray newline) is Invalid_argument before
  anything is read or made.
- The SR's and volumes' names and descriptions, and Volume.set's keys and values, go through
  steps/meta.py's encoding: every character class (each C0 control, DEL, each C1 control, the
  Unicode line and paragraph separators, tab, characters beyond the BMP, combining marks,
  bidirectional marks, text that looks encoded) reads back the same from SR.stat, SR.ls and
  Volume.stat. NUL and lone surrogates are Invalid_argument with nothing changed; so is a
  value past what ZFS holds (8,191 bytes stored), tested at and past the limit.
- The real backend reads `zfs get -H` line by line on newlines only (steps/zfs/real.py).
- SR.attach attaches only the SR its configuration's sr_uuid names.

Through the installed entry points on the file-shared model; one real-ZFS test with every
class at once and the values at the limit."""
from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_plugin_verbs import Host, model_host, real_host  # noqa: F401 (fixtures)
from tests.xapi_daemon import ScriptError
from zfsaga.steps import meta
from zfsaga.steps.zfs.errors import InvalidValue
from zfsaga.steps.zfs.interface import MAX_USER_VALUE

#: One string per character class a property must carry.
CLASSES = {
    "c0": "".join(chr(c) for c in range(1, 32)),  # every C0 control but NUL: \t \n \r \x1c...
    "del": "a\x7fb",
    "c1": "".join(chr(c) for c in range(0x80, 0xA0)),  # \x85 (NEL) among them
    "separators": "1\r2\n3\x0b4\x0c5\x1c6\x1d7\x1e8\x859\u2028a\u2029b",
    "tab": "a\tb",
    "non-bmp": "\U0001F600 \U00010348 \U000E0001",
    "combining": "e\u0301\u0308 a\u20dd",
    "bidi": "\u200fabc\u202e\u2066x\u2069\u202c\u200e",
    "looks-encoded": "b64:aGk=",
    "spaces": "  padded  ",
    "empty": "",
    "printable-at-limit": "x" * MAX_USER_VALUE,
    "encoded-at-limit": "\n" * meta.MAX_ENCODED_TEXT,
}
ALL_AT_ONCE = "".join(v for k, v in CLASSES.items() if "limit" not in k)
#: Past what ZFS holds: one byte more than each limit.
TOO_LONG = {"printable": "x" * (MAX_USER_VALUE + 1), "printable-utf8": "é" * 4096,
            "encoded": "\n" * (meta.MAX_ENCODED_TEXT + 1)}
#: What no property can carry.
UNSTORABLE = {"nul": "a\x00b", "lone-high-surrogate": "a\ud800b", "lone-low-surrogate": "\udfff"}
BAD_UUIDS = ["", "\r", "\n", "\u2028", "\x1c", "sr1", "dummySR",
             str(uuid.UUID(int=0xABCDEF << 96)).upper(), str(uuid.UUID(int=7)) + "\n",
             str(uuid.UUID(int=7)).replace("-", ""), " " + str(uuid.UUID(int=7)),
             "{" + str(uuid.UUID(int=7)) + "}", "0000000-0000-0000-0000-0000000000007"]



def _round_trip(h: Host, text: str, key_text: str) -> None:
    """`text` as SR and volume name and description and as a Volume.set value (under the
    key `key_text`), read back through SR.stat, SR.ls and Volume.stat."""
    config = h.xapi.call("SR.create", uuid=str(uuid.uuid4()), name=text, description=text,
                         configuration={"dataset": h.dataset})
    sr = h.xapi.call("SR.attach", configuration=config)
    stat = h.xapi.call("SR.stat", sr=sr)
    assert (stat["name"], stat["description"]) == (text, text)
    vol = h.xapi.call("Volume.create", sr=sr, name=text, description=text, size=1 << 20,
                      sharable=False)
    assert (vol["name"], vol["description"]) == (text, text)
    h.xapi.call("Volume.set", sr=sr, key=vol["key"], k=key_text, v=text)
    h.xapi.call("SR.set_name", sr=sr, new_name=text[::-1])
    h.xapi.call("SR.set_description", sr=sr, new_description=text[1:])
    stat = h.xapi.call("SR.stat", sr=sr)
    assert (stat["name"], stat["description"]) == (text[::-1], text[1:])
    [listed] = h.xapi.call("SR.ls", sr=sr)
    got = h.xapi.call("Volume.stat", sr=sr, key=vol["key"])
    for seen in (listed, got):
        assert (seen["name"], seen["description"]) == (text, text)
        assert seen["keys"] == {key_text: text}


@pytest.mark.parametrize("text", list(CLASSES.values()), ids=list(CLASSES))
def test_every_character_class_round_trips(model_host: Host, text: str) -> None:
    _round_trip(model_host, text, text[:90] or "k")


def test_every_class_at_once_round_trips(model_host: Host) -> None:
    _round_trip(model_host, ALL_AT_ONCE, ALL_AT_ONCE[:40])


def _refused(h: Host, verb: str, **args) -> ScriptError:
    before = h.zfs_state()
    with pytest.raises(ScriptError) as err:
        h.xapi.call(verb, **args)
    assert err.value.name == "Invalid_argument", err.value
    assert "Traceback" not in err.value.params[1]
    assert h.zfs_state() == before
    return err.value


@pytest.mark.parametrize("text", [*UNSTORABLE.values(), *TOO_LONG.values()],
                         ids=[*UNSTORABLE, *(f"too-long-{k}" for k in TOO_LONG)])
def test_what_zfs_cannot_hold_is_refused_up_front_in_every_field(model_host: Host,
                                                                  text: str) -> None:
    """In every field that reaches a property, with nothing changed: not a compensated saga."""
    _refused(model_host, "SR.create", uuid=str(uuid.uuid4()), name=text, description="",
             configuration={"dataset": model_host.dataset})
    _refused(model_host, "SR.create", uuid=str(uuid.uuid4()), name="", description=text,
             configuration={"dataset": model_host.dataset})
    sr = model_host.sr()
    vol = model_host.xapi.call("Volume.create", sr=sr, name="v", description="", size=1 << 20,
                         sharable=False)
    _refused(model_host, "SR.set_name", sr=sr, new_name=text)
    _refused(model_host, "SR.set_description", sr=sr, new_description=text)
    _refused(model_host, "Volume.create", sr=sr, name=text, description="", size=1 << 20,
             sharable=False)
    _refused(model_host, "Volume.create", sr=sr, name="", description=text, size=1 << 20,
             sharable=False)
    _refused(model_host, "Volume.set_name", sr=sr, key=vol["key"], new_name=text)
    _refused(model_host, "Volume.set_description", sr=sr, key=vol["key"], new_description=text)
    _refused(model_host, "Volume.set", sr=sr, key=vol["key"], k="k", v=text)
    _refused(model_host, "Volume.set", sr=sr, key=vol["key"], k=text, v="v")
    if text in UNSTORABLE.values():
        _refused(model_host, "Volume.unset", sr=sr, key=vol["key"], k=text)


@pytest.mark.parametrize("k", ["k" * 187, "é" * 46 + "x"], ids=["plain-key", "hex-key"])
def test_keys_at_the_name_limit_round_trip_and_one_more_is_refused(model_host: Host,
                                                                     k: str) -> None:
    """A key is a property name of at most meta.MAX_PROP_NAME characters: 187 plain, or 93
    bytes of UTF-8 as hex."""
    sr = model_host.sr()
    vol = model_host.xapi.call("Volume.create", sr=sr, name="v", description="", size=1 << 20,
                         sharable=False)
    model_host.xapi.call("Volume.set", sr=sr, key=vol["key"], k=k, v="v")
    assert model_host.xapi.call("Volume.stat", sr=sr, key=vol["key"])["keys"] == {k: "v"}
    _refused(model_host, "Volume.set", sr=sr, key=vol["key"], k=k + "k", v="v")


@pytest.mark.parametrize("bad", BAD_UUIDS, ids=[ascii(u) for u in BAD_UUIDS])
def test_an_sr_uuid_is_a_canonical_uuid(model_host: Host, bad: str) -> None:
    err = _refused(model_host, "SR.create", uuid=bad, name="n", description="",
                   configuration={"dataset": model_host.dataset})
    assert "uuid" in err.params[1]


def test_attach_attaches_only_the_sr_xapi_names(model_host: Host) -> None:
    """The PBD's configuration (SR.create's answer) names its SR's uuid: an SR.attach whose
    sr_uuid is another SR's is refused, naming both; one without sr_uuid (a PBD made before
    zfsaga returned it) attaches as it did."""
    mine = str(uuid.uuid4())
    config = model_host.xapi.call("SR.create", uuid=mine, name="n", description="",
                            configuration={"dataset": model_host.dataset})
    assert config["sr_uuid"] == mine
    other = str(uuid.uuid4())
    err = _refused(model_host, "SR.attach", configuration={**config, "sr_uuid": other})
    assert mine in err.params[1] and other in err.params[1]
    _refused(model_host, "SR.attach", configuration={**config, "sr_uuid": "\u2028"})
    assert model_host.xapi.call("SR.attach", configuration=config) == model_host.dataset
    older = {k: v for k, v in config.items() if k != "sr_uuid"}
    assert model_host.xapi.call("SR.attach", configuration=older) == model_host.dataset


@settings(derandomize=True, max_examples=500)
@given(st.text(max_size=200))
def test_any_text_is_stored_without_a_line_break_or_tab_and_reads_back(text: str) -> None:
    """meta.encode on any text: refused exactly when it holds NUL or a lone surrogate;
    otherwise a stored form `zfs get -H` prints on one line and one field, read back exactly
    by the real backend's parser."""
    from zfsaga.steps.zfs.real import _parse_all

    unstorable = "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    try:
        stored = meta.encode(text)
    except InvalidValue:
        assert unstorable
        return
    assert not unstorable
    assert stored.isprintable() and len(stored.encode()) <= MAX_USER_VALUE
    out = f"p/sr\torg.zfsaga:name\t{stored}\tlocal\np/sr\tguid\t1\t-\n"
    native, user = _parse_all(out, ["guid"], ["p/sr"])["p/sr"]
    assert meta.decode(user["org.zfsaga:name"]) == text and native["guid"].value == "1"


def test_the_real_parser_splits_on_newlines_only() -> None:
    """Every character str.splitlines splits on, in a value printed by `zfs get -H` (someone
    else's property: zfsaga encodes them), leaves the listing whole; a value with a newline
    (never zfsaga's) costs that property only."""
    from zfsaga.steps.zfs.real import _parse_all, _rows

    odd = "a\rb\x0bc\x0cd\x1ce\x1df\x1eg\x85h\u2028i\u2029j"
    out = (f"p/sr\tcom.example:odd\t{odd}\tlocal\n"
           f"p/sr\tcom.example:tabbed\tx\ty\tlocal\n"
           f"p/sr\tcom.example:broken\tfirst\nsecond\tlocal\n"
           f"p/sr\tguid\t42\t-\n")
    native, user = _parse_all(out, ["guid"], ["p/sr"])["p/sr"]
    assert user == {"com.example:odd": odd, "com.example:tabbed": "x\ty"}
    assert native["guid"].value == "42"
    assert _rows(f"p/sr\tcom.example:odd\t{odd}\n", 3) == [["p/sr", "com.example:odd", odd]]
    assert _rows(f"com.example:odd\t{odd}\n", 2) == [["com.example:odd", odd]]


@pytest.mark.realzfs
def test_every_class_at_once_round_trips_on_real_zfs(real_host: Host) -> None:
    """One SR on real ZFS: every class at once in its name, a volume's name and a key; values
    at both limits (8,191 printable bytes, 6,138 bytes stored encoded) round-trip through
    SR.stat, SR.ls and Volume.stat; 8,192 bytes is Invalid_argument with nothing changed."""
    h = real_host
    config = h.xapi.call("SR.create", uuid=str(uuid.uuid4()), name=ALL_AT_ONCE,
                         description=CLASSES["encoded-at-limit"],
                         configuration={"dataset": h.dataset})
    sr = h.xapi.call("SR.attach", configuration=config)
    vol = h.xapi.call("Volume.create", sr=sr, name=ALL_AT_ONCE, description=ALL_AT_ONCE,
                      size=1 << 20, sharable=False)
    h.xapi.call("Volume.set", sr=sr, key=vol["key"], k=ALL_AT_ONCE[:40],
                v=CLASSES["printable-at-limit"])
    _refused(h, "Volume.set", sr=sr, key=vol["key"], k="k", v=TOO_LONG["printable"])
    stat = h.xapi.call("SR.stat", sr=sr)
    assert (stat["name"], stat["description"]) == (ALL_AT_ONCE, CLASSES["encoded-at-limit"])
    [listed] = h.xapi.call("SR.ls", sr=sr)
    got = h.xapi.call("Volume.stat", sr=sr, key=vol["key"])
    for seen in (listed, got):
        assert (seen["name"], seen["description"]) == (ALL_AT_ONCE, ALL_AT_ONCE)
        assert seen["keys"] == {ALL_AT_ONCE[:40]: CLASSES["printable-at-limit"]}
