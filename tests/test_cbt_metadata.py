"""Changed block tracking's verbs that keep history (issue 21): Volume.enable_cbt and
disable_cbt (a user property of the volume, cbt_enabled in every record), Volume.data_destroy
(a bookmark and the snapshot's metadata stay, a CBT_Metadata VDI listed with its keys), and a
metadata-only VDI's destroy, attach, set, and life through a revert and its volume's destroy.
Through the installed entry points as xapi calls them, on the file-shared model; one small
flow on real ZFS."""
from __future__ import annotations

import json

import pytest

from tests.test_datapath import World
from tests.test_plugin_verbs import Host, model_host_at, _real_host  # noqa: F401
from tests.xapi_daemon import Daemon, ScriptError
from zfsaga.steps import meta

MiB = 1 << 20
SNAP_KEYS = {"is_a_snapshot": "true", "snapshot_time": "20261205T12:00:00Z"}


@pytest.fixture
def model(destdir, tmp_path) -> Host:
    return model_host_at(destdir, tmp_path)


@pytest.fixture
def real(destdir, tmp_path):
    env = {"ZFSAGA_SYSLOG": "0", "ZFSAGA_STATE_DIR": str(tmp_path / "state")}
    yield from _real_host(Daemon(destdir, "zfsaga", env))


def _tracked(host: Host, sr: str) -> tuple[dict, dict]:
    """A volume with CBT on and a snapshot of it keyed as xapi keys one."""
    call = host.xapi.call
    v = call("Volume.create", sr=sr, name="V", description="vd", size=4 * MiB, sharable=False)
    call("Volume.enable_cbt", sr=sr, key=v["key"])
    s = call("Volume.snapshot", sr=sr, key=v["key"])
    for k, val in {**SNAP_KEYS, "snapshot_of": v["key"]}.items():
        call("Volume.set", sr=sr, key=s["key"], k=k, v=val)
    return v, call("Volume.stat", sr=sr, key=s["key"])


def _ls(host: Host, sr: str) -> dict[str, dict]:
    listed = host.xapi.call("SR.ls", sr=sr)
    keys = [v["key"] for v in listed]
    assert len(keys) == len(set(keys))  # every VDI exactly once
    return {v["key"]: v for v in listed}


def _bookmarks(host: Host, sr: str) -> set[str]:
    return {b for name in host.zfs.list_tree(sr, ["type"]) if "@" not in name
            for b in host.zfs.bookmarks(name)}


def test_cbt_is_enabled_and_disabled_and_every_record_says_so(model: Host) -> None:
    sr = model.sr()
    call = model.xapi.call
    assert "VDI_CONFIG_CBT" in call("Plugin.query")["features"]
    v = call("Volume.create", sr=sr, name="V", description="", size=MiB, sharable=False)
    s = call("Volume.snapshot", sr=sr, key=v["key"])
    assert v["cbt_enabled"] is False and s["cbt_enabled"] is False
    call("Volume.enable_cbt", sr=sr, key=v["key"])
    for key in (v["key"], s["key"]):  # a snapshot of a tracked VDI says it too
        assert call("Volume.stat", sr=sr, key=key)["cbt_enabled"] is True
        assert _ls(model, sr)[key]["cbt_enabled"] is True
    assert model.zfs.user_props(f"{sr}/{v['key']}")[meta.CBT] == "on"  # the pool carries it
    call("Volume.disable_cbt", sr=sr, key=v["key"])
    assert {r["cbt_enabled"] for r in _ls(model, sr).values()} == {False}


def test_data_destroy_keeps_a_metadata_only_vdi_until_it_is_destroyed(model: Host,
                                                                      destdir, tmp_path) -> None:
    sr = model.sr()
    call = model.xapi.call
    v, s = _tracked(model, sr)
    assert call("Volume.data_destroy", sr=sr, key=s["key"]) is None
    snap, mark = f"{sr}/{s['key']}", f"{sr}/{s['key'].replace('@', '#')}"
    assert not model.zfs.exists(snap)  # its data is gone at once: no clone needs it
    assert _bookmarks(model, sr) == {mark}
    md = _ls(model, sr)[s["key"]]
    assert md == call("Volume.stat", sr=sr, key=s["key"])
    assert md["volume_type"] == ["CBT_Metadata", None] and md["cbt_enabled"] is True
    assert md["keys"] == {**SNAP_KEYS, "snapshot_of": v["key"]}
    assert (md["name"], md["description"], md["read_write"]) == ("V", "vd", False)
    assert md["physical_utilisation"] == 0 and md["virtual_size"] == s["virtual_size"]
    # xapi-storage-script sets the type right after; it and the names stay writable.
    call("Volume.set", sr=sr, key=s["key"], k="vdi-type", v="cbt_metadata")
    call("Volume.set_name", sr=sr, key=s["key"], new_name="kept\tname")
    call("Volume.unset", sr=sr, key=s["key"], k="is_a_snapshot")
    md = call("Volume.stat", sr=sr, key=s["key"])
    assert md["keys"] == {"snapshot_time": SNAP_KEYS["snapshot_time"],
                          "snapshot_of": v["key"], "vdi-type": "cbt_metadata"}
    assert md["name"] == "kept\tname"
    assert call("Volume.data_destroy", sr=sr, key=s["key"]) is None  # again: nothing to do
    for verb in ("Volume.clone", "Volume.snapshot"):
        with pytest.raises(ScriptError) as err:
            call(verb, sr=sr, key=s["key"])
        assert err.value.name == "Invalid_argument" and "metadata-only" in err.value.params[1]
    call("Volume.disable_cbt", sr=sr, key=v["key"])  # keeps the bookmarks
    assert _bookmarks(model, sr) == {mark} and s["key"] in _ls(model, sr)
    assert call("Volume.destroy", sr=sr, key=s["key"]) is None
    assert set(_ls(model, sr)) == {v["key"]} and _bookmarks(model, sr) == set()
    assert not [p for p in model.zfs.user_props(sr) if p.startswith(meta.METADATA_PREFIX)]
    with pytest.raises(ScriptError) as err:
        call("Volume.stat", sr=sr, key=s["key"])
    assert err.value.name == "Volume_does_not_exist"


def test_a_metadata_only_vdi_cannot_be_attached(destdir, tmp_path) -> None:
    world = World(destdir, tmp_path)
    call, sr = world.xapi.call, world.sr
    v = world.volume()
    call("Volume.enable_cbt", sr=sr, key=v["key"])
    s = call("Volume.snapshot", sr=sr, key=v["key"])
    call("Volume.data_destroy", sr=sr, key=s["key"])
    uri = call("Volume.stat", sr=sr, key=s["key"])["uri"][0]
    with pytest.raises(ScriptError) as err:
        world.dp.call("Datapath.attach", uri=uri, domain="1")
    assert err.value.name == "Invalid_argument" and "metadata-only" in err.value.params[1]


def test_a_cloned_snapshot_is_hidden_and_goes_with_its_last_clone(model: Host) -> None:
    sr = model.sr()
    call = model.xapi.call
    v, s = _tracked(model, sr)
    c = call("Volume.clone", sr=sr, key=s["key"])
    call("Volume.data_destroy", sr=sr, key=s["key"])
    snap = f"{sr}/{s['key']}"
    assert model.zfs.get_props(snap, ["defer_destroy"])["defer_destroy"].value == "on"
    assert _ls(model, sr)[s["key"]]["volume_type"] == ["CBT_Metadata", None]
    call("Volume.destroy", sr=sr, key=c["key"])
    assert not model.zfs.exists(snap) and s["key"] in _ls(model, sr)


def test_no_metadata_only_vdi_vanishes_with_a_retired_head(model: Host) -> None:
    """A revert to an older snapshot leaves a newer data-destroyed snapshot's bookmark on the
    old head (promote moves only the bookmarks no newer than the clone's origin), a head with
    no snapshot left: it is kept retired for the bookmark, the VDI stays listed, and
    destroying everything in turn leaves nothing."""
    sr = model.sr()
    call = model.xapi.call
    v, s1 = _tracked(model, sr)
    s2 = call("Volume.snapshot", sr=sr, key=v["key"])
    call("Volume.data_destroy", sr=sr, key=s2["key"])
    call("Volume.revert", sr=sr, snapshot=s1["key"], key=v["key"])
    held = {name.split("#")[0] for name in _bookmarks(model, sr)}
    assert len(held) == 1 and ".old-" in held.pop()  # the old head, kept for the bookmark
    assert {v["key"], s1["key"], s2["key"]} == set(_ls(model, sr))
    call("Volume.data_destroy", sr=sr, key=s1["key"])  # on the new head
    call("Volume.destroy", sr=sr, key=v["key"])  # its bookmark keeps it, retired
    assert {s1["key"], s2["key"]} == set(_ls(model, sr))
    for key in (s2["key"], s1["key"]):
        call("Volume.destroy", sr=sr, key=key)
        assert key not in _ls(model, sr)
    assert _ls(model, sr) == {}
    assert [n for n in model.zfs.list_tree(sr, ["type"]) if n != sr] == []


BAD = [("Volume.data_destroy", {"key": "no-such-key@x"}, "Volume_does_not_exist"),
       ("Volume.data_destroy", {"key": ""}, "Volume_does_not_exist"),
       ("Volume.data_destroy", {"key": "@SRNAME"}, "Volume_does_not_exist"),
       ("Volume.data_destroy", {"key": "@VOL"}, "Invalid_argument"),
       ("Volume.data_destroy", {"key": "@UNTRACKED"}, "Invalid_argument"),
       ("Volume.enable_cbt", {"key": "no-such-key"}, "Volume_does_not_exist"),
       ("Volume.enable_cbt", {"key": "@SNAP"}, "Invalid_argument"),
       ("Volume.disable_cbt", {"key": "../x"}, "Volume_does_not_exist"),
       ("Volume.enable_cbt", {"key": 7}, "Invalid_argument"),
       ("Volume.data_destroy", {"key": "@VOL", "extra": 1}, "Invalid_argument")]


def test_bad_input_is_refused_with_no_change_to_zfs(model: Host) -> None:
    sr = model.sr()
    call = model.xapi.call
    vol = call("Volume.create", sr=sr, name="v", description="", size=MiB, sharable=False)
    snap = call("Volume.snapshot", sr=sr, key=vol["key"])  # CBT not enabled
    subs = {"@VOL": vol["key"], "@UNTRACKED": snap["key"], "@SNAP": snap["key"],
            "@SRNAME": sr.rsplit("/", 1)[1]}
    before = model.zfs_state()
    for verb, args, error in BAD:
        args = {k: subs.get(v, v) if isinstance(v, str) else v for k, v in args.items()}
        with pytest.raises(ScriptError) as err:
            call(verb, sr=sr, **args)
        assert err.value.name == error, (verb, args, err.value.params)
        assert model.zfs_state() == before, (verb, args)
    with pytest.raises(ScriptError) as err:
        call("Volume.data_destroy", sr=sr + "-not", key=snap["key"])
    assert err.value.name == "Sr_not_attached"


@pytest.mark.realzfs
def test_data_destroy_then_listing_then_destroy_on_real_zfs(real: Host) -> None:
    """One small flow on real ZFS: the bookmark, the record, the listing, the destroy."""
    sr = real.sr()
    call = real.xapi.call
    v, s = _tracked(real, sr)
    call("Volume.data_destroy", sr=sr, key=s["key"])
    assert not real.zfs.exists(f"{sr}/{s['key']}")
    assert _bookmarks(real, sr) == {f"{sr}/{s['key'].replace('@', '#')}"}
    md = _ls(real, sr)[s["key"]]
    assert md == call("Volume.stat", sr=sr, key=s["key"])
    assert md["volume_type"] == ["CBT_Metadata", None] and md["keys"]["snapshot_of"] == v["key"]
    assert _ls(real, sr)[v["key"]]["cbt_enabled"] is True
    call("Volume.set", sr=sr, key=s["key"], k="vdi-type", v="cbt_metadata")
    call("Volume.destroy", sr=sr, key=s["key"])
    assert set(_ls(real, sr)) == {v["key"]} and _bookmarks(real, sr) == set()
