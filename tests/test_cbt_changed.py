"""Volume.list_changed_blocks (issue 21) through the installed entry points as xapi calls them:
every refusal on the file-shared model (which holds no data, so a good call answers a clear
Unimplemented there), each with zero changes to ZFS; and one small flow on real ZFS, the bitmap
between a data-destroyed snapshot and a later one exactly the blocks written in between, and
up to the live volume through a temporary snapshot that goes with the call."""
from __future__ import annotations

import base64

import pytest

# The model and real hosts of the CBT tests (fixtures: pytest finds them imported here).
from tests.test_cbt_metadata import model, real  # noqa: F401
from tests.test_plugin_verbs import Host
from tests.xapi_daemon import ScriptError

MiB = 1 << 20
G = 64 * 1024


def _changed(host: Host, sr: str, key: str, key2: str, offset: int = 0,
             length: int = -1) -> dict:
    return host.xapi.call("Volume.list_changed_blocks", sr=sr, key=key, key2=key2,
                          offset=offset, length=length)


def _marked(answer: dict) -> set[int]:
    """The blocks the answer marks, read as xapi's consumers read it: base64, MSB first."""
    bitmap = base64.b64decode(answer["bitmap"], validate=True)
    return {i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (0x80 >> i % 8)}


#: (what, key, key2, offset, length, error, what its message says); @-words are substituted
#: by the test.
BAD = [("unknown key", "no-such@x", "@S2", 0, -1, "Volume_does_not_exist",
        "no volume"),
       ("unknown key2", "@S1", "@VOL@nope", 0, -1, "Volume_does_not_exist",
        "no volume"),
       ("the SR as key", "@SRNAME", "@S2", 0, -1, "Volume_does_not_exist",
        "no volume"),
       ("an empty key", "", "@S2", 0, -1, "Volume_does_not_exist",
        "no volume"),
       ("a path as key", "../x", "@S2", 0, -1, "Volume_does_not_exist",
        "no volume"),
       ("the volume as key", "@VOL", "@S2", 0, -1, "Invalid_argument",
        "is a volume"),
       ("the volume as key2, CBT disabled", "@U1", "@UVOL", 0, -1, "Invalid_argument",
        "changed block tracking is not enabled"),
       ("another volume as key2", "@S1", "@OTHER", 0, -1, "Invalid_argument",
        "not of the same volume"),
       ("the volume as key2, a window off it", "@S1", "@VOL", 4 * MiB + 1, -1, "Invalid_argument",
        "not a window"),
       ("metadata-only key2", "@S1", "@MD", 0, -1, "Invalid_argument",
        "is a metadata-only VDI"),
       ("keys of two volumes", "@S1", "@OTHER_SNAP", 0, -1, "Invalid_argument",
        "not of the same volume"),
       ("key2 older than key", "@S2", "@S1", 0, -1, "Invalid_argument",
        "is not later than"),
       ("key2 older than a metadata-only key", "@MD", "@S0", 0, -1, "Invalid_argument",
        "is not later than"),
       ("the same point twice", "@S1", "@S1", 0, -1, "Invalid_argument",
        "is not later than"),
       ("CBT disabled", "@U1", "@U2", 0, -1, "Invalid_argument",
        "changed block tracking is not enabled"),
       ("offset negative", "@S1", "@S2", -1, -1, "Invalid_argument",
        "not a window"),
       ("offset past the disk", "@S1", "@S2", 4 * MiB + 1, -1, "Invalid_argument",
        "not a window"),
       ("length below -1", "@S1", "@S2", 0, -2, "Invalid_argument",
        "not a window")]


def test_bad_input_is_refused_before_any_send_with_no_change_to_zfs(model: Host) -> None:
    sr = model.sr()
    call = model.xapi.call
    vol = call("Volume.create", sr=sr, name="v", description="", size=4 * MiB, sharable=False)
    call("Volume.enable_cbt", sr=sr, key=vol["key"])
    s0, md, s1, s2 = (call("Volume.snapshot", sr=sr, key=vol["key"]) for _ in range(4))
    call("Volume.data_destroy", sr=sr, key=md["key"])
    other = call("Volume.create", sr=sr, name="o", description="", size=4 * MiB,
                 sharable=False)
    call("Volume.enable_cbt", sr=sr, key=other["key"])
    other_snap = call("Volume.snapshot", sr=sr, key=other["key"])
    untracked = call("Volume.create", sr=sr, name="u", description="", size=MiB,
                     sharable=False)
    u1, u2 = (call("Volume.snapshot", sr=sr, key=untracked["key"]) for _ in range(2))
    subs = {"@VOL": vol["key"], "@S0": s0["key"], "@S1": s1["key"], "@S2": s2["key"],
            "@MD": md["key"], "@OTHER_SNAP": other_snap["key"], "@U1": u1["key"],
            "@U2": u2["key"], "@SRNAME": sr.rsplit("/", 1)[1], "@UVOL": untracked["key"],
            "@OTHER": other["key"],
            "@VOL@nope": vol["key"] + "@nope"}
    before = model.zfs_state()
    for what, key, key2, offset, length, error, says in BAD:
        with pytest.raises(ScriptError) as err:
            _changed(model, sr, subs.get(key, key), subs.get(key2, key2), offset, length)
        assert err.value.name == error, (what, err.value.params)
        assert says in err.value.params[1], (what, err.value.params)
        assert model.zfs_state() == before, what
    for args, error in [({"key": s1["key"], "key2": s2["key"], "offset": 0}, "Invalid_argument"),
                        ({"key": s1["key"], "key2": s2["key"], "offset": "0", "length": -1},
                         "Invalid_argument")]:
        with pytest.raises(ScriptError) as err:  # the IDL's types: a field missing, a string
            call("Volume.list_changed_blocks", sr=sr, **args)
        assert err.value.name == error, args
    with pytest.raises(ScriptError) as err:
        _changed(model, sr + "-not", s1["key"], s2["key"])
    assert err.value.name == "Sr_not_attached"
    # A good call, from a snapshot and from a metadata-only VDI, up to a snapshot and up to
    # the volume itself: the model holds no data, and says so before any temporary snapshot.
    for key in (s1["key"], md["key"]):
        for key2 in (s2["key"], vol["key"]):
            with pytest.raises(ScriptError) as err:
                _changed(model, sr, key, key2)
            assert err.value.name == "Unimplemented", err.value.params
            assert "real ZFS" in err.value.params[1]
    assert model.zfs_state() == before

    # After a revert to s0, the points newer than s0 (s1, the metadata-only md) stay on the
    # head the revert set aside: not in the live volume's history, refused before any
    # temporary snapshot; s0 is (the model then says it holds no data).
    call("Volume.revert", sr=sr, snapshot=s0["key"], key=vol["key"])
    reverted = model.zfs_state()
    for key in (s1["key"], md["key"]):
        with pytest.raises(ScriptError) as err:
            _changed(model, sr, key, vol["key"])
        assert err.value.name == "Invalid_argument", (key, err.value.params)
        assert "is not in the history of" in err.value.params[1]
    with pytest.raises(ScriptError) as err:
        _changed(model, sr, s0["key"], vol["key"])
    assert err.value.name == "Unimplemented", err.value.params
    assert model.zfs_state() == reverted


@pytest.mark.realzfs
def test_changed_blocks_from_a_data_destroyed_snapshot_on_real_zfs(real: Host) -> None:
    """Write the volume whole, snapshot, write known blocks, snapshot, data_destroy the first:
    the bitmap between them is exactly the blocks written, and a window of it too."""
    from tests.stream_fixtures import device, write, zfs as zfs_cli

    sr = real.sr()
    call = real.xapi.call
    size = 4 * MiB
    vol = call("Volume.create", sr=sr, name="V", description="", size=size, sharable=False)
    call("Volume.enable_cbt", sr=sr, key=vol["key"])
    dev = device(f"{sr}/{vol['key']}")
    write(dev, 0, b"".join(b"%08d" % o * (G // 8) for o in range(0, size, G)))
    first = call("Volume.snapshot", sr=sr, key=vol["key"])
    write(dev, 0, b"a" * 4096)                  # block 0
    write(dev, 5 * G - 1024, b"b" * 2048)       # across blocks 4 and 5
    write(dev, size - 4096, b"c" * 4096)        # the last block, 63
    second = call("Volume.snapshot", sr=sr, key=vol["key"])
    call("Volume.data_destroy", sr=sr, key=first["key"])
    assert call("Volume.stat", sr=sr, key=first["key"])["volume_type"] == ["CBT_Metadata", None]

    answer = _changed(real, sr, first["key"], second["key"])
    assert answer["granularity"] == G
    assert len(base64.b64decode(answer["bitmap"])) == size // G // 8
    assert _marked(answer) == {0, 4, 5, 63}
    assert _marked(_changed(real, sr, first["key"], second["key"], 4 * G, 2 * G)) == {0, 1}

    # Up to the volume itself, as backup tools ask: through a temporary snapshot, which goes.
    def vdis() -> list:  # what xapi sees listed (not the space the writes below take)
        return sorted((v["key"], v["read_write"], str(v.get("volume_type")))
                      for v in call("SR.ls", sr=sr))

    listed = vdis()
    write(dev, 9 * G + 5, b"d" * 100)           # block 9, live
    assert _marked(_changed(real, sr, second["key"], vol["key"])) == {9}
    assert _marked(_changed(real, sr, first["key"], vol["key"])) == {0, 4, 5, 9, 63}
    assert vdis() == listed
    snapshots = zfs_cli("list", "-H", "-o", "name", "-t", "snapshot", "-r", sr).split()
    assert not [n for n in snapshots if "@zfsaga-changes-" in n], snapshots
