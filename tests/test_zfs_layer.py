"""The ZFS layer's contract, run on the model and on real ZFS: the behaviours of
OpenZFS 2.1 (snapshot, clone, promote, rename, destroy, holds) that the plugin relies on."""
import subprocess
import uuid

import pytest

from zfsaga.steps.zfs.retry import retry_transient
from zfsaga.steps.zfs.errors import (AlreadyExists, HasDependents, InvalidName, InvalidValue,
                                 NotAClone, NotFound, SnapshotHeld, ZfsError)

MiB = 1 << 20
TAG = "org.zfsaga:saga"


@pytest.fixture(params=["model", pytest.param("real", marks=pytest.mark.realzfs),
                        pytest.param("real-in-process", marks=pytest.mark.realzfs)])
def zfs(request):
    """The layer's contract on the model, on real ZFS as read by `zfs get`, and on real ZFS as
    a mutating verb reads and writes it: through channel programs (steps/zfs/channel.py)."""
    from tests.conftest import zfs_backend

    yield from zfs_backend(request.param)


def test_create_zvol_sets_tag_atomically_and_reads_back(zfs):
    z, root = zfs
    z.create_zvol(f"{root}/a", 4 * MiB, props={TAG: "s1/create"})
    z.create_zvol(f"{root}/b", 4 * MiB, sparse=False, volblocksize=16384)
    a = z.get_props(f"{root}/a", ["type", "volsize", TAG, "refreservation", "guid", "createtxg"])
    assert a["type"].value == "volume"
    assert a["volsize"].value == str(4 * MiB)
    assert a[TAG] == a[TAG].__class__("s1/create", "local")
    assert a["refreservation"].value == "0"
    b = z.get_props(f"{root}/b", ["volblocksize", "refreservation", TAG])
    assert b["volblocksize"].value == "16384"
    assert int(b["refreservation"].value) >= 4 * MiB
    assert b[TAG].value is None and b[TAG].local is None
    assert z.exists(f"{root}/a") and not z.exists(f"{root}/zz")


def test_create_refuses_existing_missing_parent_and_bad_size(zfs):
    z, root = zfs
    z.create_zvol(f"{root}/a", MiB)
    with pytest.raises(AlreadyExists):
        z.create_zvol(f"{root}/a", MiB)
    with pytest.raises(NotFound):
        z.create_zvol(f"{root}/nope/a", MiB)
    with pytest.raises(InvalidValue):
        z.create_zvol(f"{root}/odd", MiB + 1)
    with pytest.raises(InvalidValue):
        z.create_zvol(f"{root}/huge", 2**64)
    assert not z.exists(f"{root}/odd")


def test_snapshots_inherit_user_props_with_source_inherited(zfs):
    z, root = zfs
    z.create_zvol(f"{root}/a", MiB, props={"org.zfsaga:name": "disk1"})
    z.snapshot([f"{root}/a@s1"], props={TAG: "s2/snap"})
    p = z.get_props(f"{root}/a@s1", ["org.zfsaga:name", TAG, "type", "volsize"])
    assert p["org.zfsaga:name"].value == "disk1" and p["org.zfsaga:name"].source == "inherited"
    assert p["org.zfsaga:name"].local is None
    assert p[TAG].local == "s2/snap"
    assert p["type"].value == "snapshot" and p["volsize"].value == str(MiB)


def test_destroy_refuses_dependents_and_defers_cloned_snapshot(zfs):
    z, root = zfs
    z.create_zvol(f"{root}/a", MiB)
    z.snapshot([f"{root}/a@s1"])
    with pytest.raises(HasDependents):
        z.destroy(f"{root}/a")
    z.clone(f"{root}/a@s1", f"{root}/c")
    with pytest.raises(HasDependents):
        z.destroy_snapshots([f"{root}/a@s1"])
    assert z.exists(f"{root}/a@s1")
    z.destroy_snapshots([f"{root}/a@s1"], defer=True)
    assert z.get_props(f"{root}/a@s1", ["defer_destroy"])["defer_destroy"].value == "on"
    # udev opens a new zvol's device for a moment: Busy, transient, as every saga retries it
    retry_transient(lambda: z.destroy(f"{root}/c"))
    assert not z.exists(f"{root}/a@s1")
    z.destroy(f"{root}/a")
    assert not z.exists(f"{root}/a")
    # missing snapshots are ignored, as libzfs_core does
    z.destroy_snapshots([f"{root}/gone@x"])
    with pytest.raises(NotFound):
        z.destroy(f"{root}/a")


def _zvol_cloned_at_s1(z, root: str) -> None:
    """a with snapshot s1, and b a clone of a@s1: the shape every promote test starts from."""
    z.create_zvol(f"{root}/a", MiB)
    z.snapshot([f"{root}/a@s1"])
    z.clone(f"{root}/a@s1", f"{root}/b")


def test_promote_moves_older_snapshots_and_swaps_origin(zfs):
    z, root = zfs
    _zvol_cloned_at_s1(z, root)
    z.snapshot([f"{root}/a@s2"])
    guid_s1 = z.get_props(f"{root}/a@s1", ["guid"])["guid"].value
    z.promote(f"{root}/b")
    assert z.exists(f"{root}/b@s1") and not z.exists(f"{root}/a@s1")
    assert z.exists(f"{root}/a@s2")
    assert z.get_props(f"{root}/b@s1", ["guid"])["guid"].value == guid_s1
    assert z.get_props(f"{root}/a", ["origin"])["origin"].value == f"{root}/b@s1"
    assert z.get_props(f"{root}/b", ["origin"])["origin"].value is None
    with pytest.raises(NotAClone):
        z.promote(f"{root}/b")
    # promote back restores the original shape
    z.promote(f"{root}/a")
    assert z.exists(f"{root}/a@s1")
    assert z.get_props(f"{root}/b", ["origin"])["origin"].value == f"{root}/a@s1"


def test_promote_refuses_snapshot_name_collision(zfs):
    z, root = zfs
    _zvol_cloned_at_s1(z, root)
    z.snapshot([f"{root}/b@s1"])
    with pytest.raises(AlreadyExists):
        z.promote(f"{root}/b")


def test_rename_carries_snapshots_and_clone_origins(zfs):
    z, root = zfs
    z.create_filesystem(f"{root}/hidden")
    z.create_zvol(f"{root}/a", MiB)
    z.snapshot([f"{root}/a@s1"])
    z.clone(f"{root}/a@s1", f"{root}/c")
    guid = z.get_props(f"{root}/a", ["guid"])["guid"].value
    z.rename(f"{root}/a", f"{root}/hidden/a")
    assert z.get_props(f"{root}/hidden/a", ["guid"])["guid"].value == guid
    assert z.exists(f"{root}/hidden/a@s1")
    assert z.get_props(f"{root}/c", ["origin"])["origin"].value == f"{root}/hidden/a@s1"
    with pytest.raises(NotFound):
        z.rename(f"{root}/a", f"{root}/x")
    z.create_zvol(f"{root}/d", MiB)
    with pytest.raises(AlreadyExists):
        z.rename(f"{root}/d", f"{root}/c")
    with pytest.raises(NotFound):
        z.rename(f"{root}/d", f"{root}/nope/d")


def test_props_set_inherit_and_volsize(zfs):
    z, root = zfs
    z.create_filesystem(f"{root}/fs", props={"org.zfsaga:sr": "yes"})
    z.create_zvol(f"{root}/fs/v", 8 * MiB)
    p = z.get_props(f"{root}/fs/v", ["org.zfsaga:sr"])["org.zfsaga:sr"]
    assert (p.value, p.source) == ("yes", "inherited")
    z.set_props(f"{root}/fs/v", {"org.zfsaga:sr": "own", "org.zfsaga:name": "n"})
    assert z.get_props(f"{root}/fs/v", ["org.zfsaga:sr"])["org.zfsaga:sr"].local == "own"
    z.inherit(f"{root}/fs/v", "org.zfsaga:sr")
    assert z.get_props(f"{root}/fs/v", ["org.zfsaga:sr"])["org.zfsaga:sr"].source == "inherited"
    z.set_volsize(f"{root}/fs/v", 16 * MiB)
    assert z.get_props(f"{root}/fs/v", ["volsize"])["volsize"].value == str(16 * MiB)
    with pytest.raises(InvalidValue):
        z.set_volsize(f"{root}/fs/v", 16 * MiB + 512)
    with pytest.raises(InvalidValue):
        z.set_props(f"{root}/fs/v", {"quota": "1G"})  # not a property the layer sets
    with pytest.raises(InvalidValue):
        z.set_props(f"{root}/fs", {"compression": "fastest"})  # not a value ZFS takes
    z.set_props(f"{root}/fs", {"compression": "lz4", "logbias": "throughput"})
    tuned = z.get_props(f"{root}/fs/v", ["compression", "logbias", "sync"])
    assert [(p.value, p.source) for p in tuned.values()] == [
        ("lz4", "inherited"), ("throughput", "inherited"), ("standard", "default")]
    z.set_props(f"{root}/fs", {"snapdev": "visible"})
    snapdev = z.get_props(f"{root}/fs/v", ["snapdev"])["snapdev"]
    assert (snapdev.value, snapdev.source) == ("visible", "inherited")


def test_filesystems_made_by_the_layer_start_unmounted_and_mount(zfs):
    """libzfs_core creates without mounting (only the zfs CLI mounts after create): anything
    that writes files into a dataset it made must mount it first."""
    z, root = zfs
    z.create_filesystem(f"{root}/fs")
    z.create_zvol(f"{root}/v", MiB)
    assert z.get_props(f"{root}/fs", ["mounted"])["mounted"].value == "no"
    assert z.get_props(f"{root}/v", ["mounted"])["mounted"].value is None
    z.mount(f"{root}/fs")
    assert z.get_props(f"{root}/fs", ["mounted"])["mounted"].value == "yes"
    with pytest.raises(AlreadyExists):
        z.mount(f"{root}/fs")
    with pytest.raises(InvalidValue):
        z.mount(f"{root}/v")
    with pytest.raises(NotFound):
        z.mount(f"{root}/nope")


def test_holds_block_destroy_until_released(zfs):
    z, root = zfs
    z.create_zvol(f"{root}/a", MiB)
    z.snapshot([f"{root}/a@s1"])
    z.hold(f"{root}/a@s1", "zfsaga")
    assert z.holds(f"{root}/a@s1") == {"zfsaga"}
    with pytest.raises(SnapshotHeld):
        z.destroy_snapshots([f"{root}/a@s1"])
    z.destroy_snapshots([f"{root}/a@s1"], defer=True)
    assert z.exists(f"{root}/a@s1")
    z.release(f"{root}/a@s1", "zfsaga")
    assert not z.exists(f"{root}/a@s1")
    with pytest.raises(NotFound):
        z.hold(f"{root}/a@s1", "zfsaga")


def test_a_held_snapshot_with_clones_refuses_destroy_as_held(zfs):
    """The kernel checks holds before clones (a case the random differential run found)."""
    z, root = zfs
    z.create_zvol(f"{root}/a", MiB)
    z.snapshot([f"{root}/a@s1"])
    z.clone(f"{root}/a@s1", f"{root}/c")
    z.hold(f"{root}/a@s1", "zfsaga")
    with pytest.raises(SnapshotHeld):
        z.destroy_snapshots([f"{root}/a@s1"])
    z.release(f"{root}/a@s1", "zfsaga")
    with pytest.raises(HasDependents):
        z.destroy_snapshots([f"{root}/a@s1"])


def test_a_reserved_clone_is_thick_from_birth(zfs):
    z, root = zfs
    z.create_zvol(f"{root}/a", 4 * MiB, sparse=False)
    z.snapshot([f"{root}/a@s1"])
    z.clone(f"{root}/a@s1", f"{root}/thin")
    z.clone(f"{root}/a@s1", f"{root}/thick", {TAG: "x/clone"}, reserve=True)
    assert z.get_props(f"{root}/thin", ["refreservation"])["refreservation"].value == "0"
    thick = z.get_props(f"{root}/thick", ["refreservation", TAG])
    assert (thick["refreservation"].value, thick["refreservation"].source) == (str(4 * MiB),
                                                                                 "local")
    assert thick[TAG].local == "x/clone"
    z.create_filesystem(f"{root}/fs")
    z.snapshot([f"{root}/fs@s1"])
    with pytest.raises(InvalidValue):
        z.clone(f"{root}/fs@s1", f"{root}/fsclone", reserve=True)
    assert not z.exists(f"{root}/fsclone")


def test_user_props_are_the_objects_own_only(zfs):
    z, root = zfs
    z.create_filesystem(f"{root}/fs", props={"org.zfsaga:sr": "yes"})
    z.create_zvol(f"{root}/fs/v", MiB, sparse=False, props={"org.zfsaga:name": "disk"})
    z.set_props(f"{root}/fs/v", {"com.example:owner": "ops"})
    z.snapshot([f"{root}/fs/v@s1"], {TAG: "s/snap"})
    # Inherited ones (org.zfsaga:sr) and native ones (volsize, refreservation) are not listed.
    assert z.user_props(f"{root}/fs/v") == {"org.zfsaga:name": "disk",
                                            "com.example:owner": "ops"}
    assert z.user_props(f"{root}/fs/v@s1") == {TAG: "s/snap"}
    z.inherit(f"{root}/fs/v", "com.example:owner")
    assert z.user_props(f"{root}/fs/v") == {"org.zfsaga:name": "disk"}
    with pytest.raises(NotFound):
        z.user_props(f"{root}/fs/nope")


def test_list_tree_reads_a_whole_subtree_in_one_call(zfs):
    z, root = zfs
    z.create_zvol(f"{root}/a", MiB, props={TAG: "x"})
    z.snapshot([f"{root}/a@s1", ], props={TAG: "y"})
    z.create_zvol(f"{root}/b", MiB)
    before = z.hooks.calls
    tree = z.list_tree(root, ["type", TAG, "guid"])
    assert z.hooks.calls == before + 1
    assert list(tree) == [root, f"{root}/a", f"{root}/a@s1", f"{root}/b"]
    assert tree[f"{root}/a@s1"][TAG].local == "y"
    assert tree[f"{root}/b"][TAG].value is None


@pytest.mark.parametrize("bad", ["a;rm -rf /", "x@y", "../", "-o", "a b"])
def test_hostile_names_make_zero_zfs_calls(zfs, bad):
    z, root = zfs
    before = z.hooks.calls
    for call in (lambda: z.create_zvol(f"{root}/{bad}", MiB),
                 lambda: z.snapshot([f"{root}/{bad}@s"]),
                 lambda: z.rename(f"{root}/{bad}", f"{root}/ok"),
                 lambda: z.destroy(f"{root}/{bad}"),
                 lambda: z.promote(f"{root}/{bad}"),
                 lambda: z.list_tree(f"{root}/{bad}", ["guid"])):
        with pytest.raises(ZfsError) as info:
            call()
        assert isinstance(info.value, (InvalidName, InvalidValue))
    assert z.hooks.calls == before
    assert list(z.list_tree(root, ["type"])) == [root]


def test_tree_user_props_lists_every_local_user_property_in_one_call(zfs):
    z, root = zfs
    z.create_filesystem(f"{root}/fs", {"org.zfsaga:sr": "1"})
    z.create_zvol(f"{root}/fs/v", 1 << 20, props={"org.zfsaga:name": "a b", TAG: "x"})
    z.snapshot([f"{root}/fs/v@s1"], {TAG: "snap"})
    z.create_zvol(f"{root}/fs/bare", 1 << 20)
    z.set_props(f"{root}/fs/v", {"org.zfsaga:description": "=" * 8191})
    got = z.tree_user_props(f"{root}/fs")
    assert got == {f"{root}/fs": {"org.zfsaga:sr": "1"},
                   f"{root}/fs/v": {"org.zfsaga:name": "a b", TAG: "x",
                                    "org.zfsaga:description": "=" * 8191},
                   f"{root}/fs/v@s1": {TAG: "snap"}}  # inherited ones and bare datasets: absent
    with pytest.raises(InvalidValue):  # ZFS's own limit, checked before the call
        z.set_props(f"{root}/fs/v", {"org.zfsaga:description": "=" * 8192})


def test_pool_health_reads_the_pools_state(zfs):
    z, root = zfs
    assert z.pool_health(root.split("/")[0]) == "ONLINE"
    with pytest.raises(InvalidName):
        z.pool_health("a;b")
    # The names of the imported pools (zfsaga --host recover looks for lost made pools there).
    pools = z.imported_pools()
    assert root.split("/")[0] in pools and pools == sorted(set(pools))


def test_describe_is_get_props_and_user_props_in_one_call(zfs):
    z, root = zfs
    z.create_zvol(f"{root}/v", 1 << 20, sparse=False, props={"org.zfsaga:name": "a\\b", TAG: "t"})
    z.snapshot([f"{root}/v@s"], {TAG: "s"})
    wanted = ["type", "volsize", "refreservation", "guid", "origin", "mountpoint"]
    for name in (f"{root}/v", f"{root}/v@s"):
        calls = z.hooks.calls
        native, user = z.describe(name, wanted)
        assert z.hooks.calls == calls + 1
        assert native == z.get_props(name, wanted) and user == z.user_props(name)
    with pytest.raises(NotFound):
        z.describe(f"{root}/nope", ["type"])


def test_several_objects_are_described_in_one_call(zfs):
    """describe_many (an SR and a volume: Volume.stat) and describe_tree (SR.ls): one call
    each, the requested properties with their sources, every local user property, and what
    does not exist left out (not an error)."""
    z, root = zfs
    fs, v = f"{root}/fs", f"{root}/fs/v"
    z.create_filesystem(fs, props={"org.zfsaga:sr": "yes"})
    z.create_zvol(v, 8 * MiB, props={"org.zfsaga:name": "n"})
    z.snapshot([f"{v}@s"], {"org.zfsaga:key": "k"})
    before = z.hooks.calls
    got = z.describe_many([fs, v, f"{fs}/missing"], ["type", "org.zfsaga:sr"])
    tree = z.describe_tree(fs, ["type", "volsize"])
    assert z.hooks.calls - before == 2
    assert set(got) == {fs, v}
    assert got[v][0]["org.zfsaga:sr"] == ("yes", "inherited") and got[fs][0]["type"].value \
        == "filesystem"
    assert got[v][1] == {"org.zfsaga:name": "n"} and got[fs][1] == {"org.zfsaga:sr": "yes"}
    assert set(tree) == {fs, v, f"{v}@s"}
    assert tree[f"{v}@s"][1] == {"org.zfsaga:key": "k"}
    assert tree[fs][0]["volsize"].value is None and tree[v][0]["volsize"].value == str(8 * MiB)


@pytest.mark.realzfs
def test_in_process_reads_answer_exactly_what_zfs_get_prints():
    """A mutating verb reads through channel programs (steps/zfs/channel.py); every property
    the layer reads, of every kind of object it meets, must read exactly as the `zfs get`
    path reads it: values, sources (local, default, inherited, none), local user properties,
    what is missing. And a user-property write through a channel program is all or none."""
    from tests.conftest import POOL, destroy_tree, real_zfs
    from zfsaga.steps.zfs import channel
    from zfsaga.steps.zfs.interface import NATIVE_PROPS
    from zfsaga.steps.zfs.real import RealZfs

    cli, lzc = real_zfs(), real_zfs(in_process=True)
    root = f"{POOL}/ip{uuid.uuid4().hex[:8]}"
    subprocess.run(["zfs", "create", "-o", "org.zfsaga:sr=x", "-o", "compression=lz4", root],
                   check=True)
    try:
        subprocess.run(["zfs", "create", "-o", "sync=always", f"{root}/fs"], check=True)
        cli.create_filesystem(f"{root}/fs/in")
        cli.snapshot([f"{root}/fs@s"])
        cli.create_zvol(f"{root}/v", 8 * MiB, props={"org.zfsaga:name": "a b\\c", "x:e": ""})
        cli.create_zvol(f"{root}/thick", 8 * MiB, sparse=False)
        cli.create_zvol(f"{root}/big", 8 * MiB, volblocksize=16384)
        cli.snapshot([f"{root}/v@s1"], {"org.zfsaga:key": "k@s1"})
        cli.clone(f"{root}/v@s1", f"{root}/c", {"org.zfsaga:retired": "yes"})
        cli.hold(f"{root}/v@s1", "keep")
        cli.set_props(f"{root}/v", {"org.zfsaga:long": "v" * 8191})
        objects = [root, f"{root}/fs", f"{root}/fs/in", f"{root}/fs@s", f"{root}/v",
                   f"{root}/thick", f"{root}/big", f"{root}/v@s1", f"{root}/c"]
        wanted = [p for p in NATIVE_PROPS if p not in ("mounted",)] + \
            ["org.zfsaga:sr", "org.zfsaga:name", "org.zfsaga:retired", "no:such"]
        subprocess.run(["zpool", "sync", POOL], check=True)
        for name in objects:
            got, expected = lzc.describe(name, wanted), cli.describe(name, wanted)
            assert got[1] == expected[1], name
            assert _differing(got[0], expected[0]) == {}, name
            _same_space(lzc, cli, name)
            assert lzc.user_props(name) == cli.user_props(name), name
            assert lzc.get_props(name, ["guid", "mounted"]) == cli.get_props(
                name, ["guid", "mounted"]), name  # `mounted`: the CLI's answer, through it
        missing = [f"{root}/nope", f"{root}/v@nope", "nosuchpool/x"]
        many, expected = (z.describe_many([*objects, *missing], wanted) for z in (lzc, cli))
        assert set(many) == set(expected) == set(objects)
        for name in objects:
            assert many[name][1] == expected[name][1]
            assert _differing(many[name][0], expected[name][0]) == {}, name
        for name in missing:
            with pytest.raises(NotFound):
                lzc.describe(name, ["type"])
        # A whole tree in one program (SR.ls in a warm server's child), as `zfs get -r`.
        # (The program itself, first: the layer falls back to the CLI when a program fails.)
        lists = RealZfs(in_process=True, listings_in_process=True)
        expected = cli.describe_tree(root, wanted)
        for tree in (channel.describe_tree(lzc._lzc, root, wanted),
                     lists.describe_tree(root, wanted)):
            assert set(tree) == set(expected) == set(objects)
            for name in objects:
                assert tree[name][1] == expected[name][1], name
                assert _differing(tree[name][0], expected[name][0]) == {}, name
        with pytest.raises(NotFound):
            channel.describe_tree(lzc._lzc, f"{root}/nope", ["type"])
        with pytest.raises(NotFound):
            lists.describe_tree(f"{root}/nope", ["type"])
        # Writes: all the user properties of one call, or none of them.
        lzc.set_props(f"{root}/v@s1", {"org.zfsaga:a": "1", "org.zfsaga:b": "two words"})
        assert cli.user_props(f"{root}/v@s1") == {"org.zfsaga:key": "k@s1",
                                                  "org.zfsaga:a": "1",
                                                  "org.zfsaga:b": "two words"}
        before = cli.user_props(f"{root}/v")
        with pytest.raises(InvalidValue):  # past the layer's own check: ZFS's refusal
            channel.set_user_props(lzc._lzc, f"{root}/v",
                                   {"org.zfsaga:ok": "1", "org.zfsaga:big": "v" * 9000})
        assert cli.user_props(f"{root}/v") == before
        with pytest.raises(NotFound):
            lzc.set_props(f"{root}/gone", {"org.zfsaga:a": "1"})
    finally:
        destroy_tree(root)


#: Space figures move on their own between two reads (a transaction group settling).
_SPACE = ("used", "available", "referenced")


def _differing(got: dict, expected: dict) -> dict:
    return {p: (got[p], expected[p]) for p in expected
            if p not in _SPACE and got[p] != expected[p]}


def _same_space(lzc, cli, name: str) -> None:
    """The space figures read alike both ways, given a few tries to catch them at rest."""
    for _ in range(5):
        got, expected = (z.get_props(name, _SPACE) for z in (lzc, cli))
        if got == expected:
            return
    assert got == expected, name


def test_a_deferred_destroy_that_is_busy_is_transient_not_held() -> None:
    """pyzfs names every EBUSY of lzc_destroy_snaps SnapshotIsHeld. A deferred destroy is
    never refused for holds, so its EBUSY is the snapshot's device held open (udev probing a
    new snapshot's zvol): Busy, retried, not a permanent failure that parks a clone's
    release of its base snapshot (seen on real ZFS under load)."""
    lzc = pytest.importorskip("libzfs_core.exceptions")
    from zfsaga.steps.zfs.errors import Busy, from_lzc

    refused = lzc.SnapshotDestructionFailure([lzc.SnapshotIsHeld(b"p/a@s")], 0)
    assert type(from_lzc(refused, "p/a@s")) is SnapshotHeld
    busy = from_lzc(refused, "p/a@s", deferred=True)
    assert type(busy) is Busy and busy.transient


def test_the_journal_witness_is_raised_never_lowered(zfs):
    """Two sagas of one SR (creates, side by side) write their generations in either order:
    the witness keeps the larger, or a journal that lost the newer saga's records would read
    as whole (steps/srs.py JOURNAL_GEN; a channel program on real ZFS, read and set in one
    transaction)."""
    from zfsaga.steps.srs import JOURNAL_GEN

    z, root = zfs
    seen = []
    for generation in (5, 3, 5, 12, 11):
        z.set_witness(root, JOURNAL_GEN, generation)
        seen.append(z.get_props(root, [JOURNAL_GEN])[JOURNAL_GEN].local)
    assert seen == ["5", "5", "5", "12", "12"]
    with pytest.raises(NotFound):
        z.set_witness(f"{root}/missing", JOURNAL_GEN, 1)


def test_a_bookmark_keeps_its_snapshots_point_after_the_snapshot_goes(zfs):
    """A bookmark carries its snapshot's guid and createtxg, survives the snapshot's destroy,
    follows its dataset on rename, refuses a second of its name, and a destroy of missing
    bookmarks is no error."""
    z, root = zfs
    vol = f"{root}/v"
    z.create_zvol(vol, 4 * MiB)
    z.snapshot([f"{vol}@s1"])
    snap = z.get_props(f"{vol}@s1", ["guid", "createtxg"])
    z.bookmark(f"{vol}@s1", f"{vol}#s1")
    with pytest.raises(AlreadyExists):
        z.bookmark(f"{vol}@s1", f"{vol}#s1")
    with pytest.raises(InvalidName):
        z.bookmark(f"{vol}@s1", f"{root}/other#s1")  # only on the snapshot's own dataset
    with pytest.raises(NotFound):
        z.bookmark(f"{vol}@nope", f"{vol}#nope")
    z.destroy_snapshots([f"{vol}@s1"])
    assert z.bookmarks(vol) == {f"{vol}#s1": {"guid": snap["guid"].value,
                                              "createtxg": snap["createtxg"].value}}
    z.rename(vol, f"{root}/w")
    assert list(z.bookmarks(f"{root}/w")) == [f"{root}/w#s1"]
    z.destroy_bookmarks([f"{root}/w#s1", f"{root}/w#never"])
    assert z.bookmarks(f"{root}/w") == {}
    # No snapshot, no bookmark: nothing holds it (a renamed zvol's new minor: busy a moment).
    retry_transient(lambda: z.destroy(f"{root}/w"))
    with pytest.raises(NotFound):
        z.bookmarks(f"{root}/w")


def test_promote_moves_only_the_bookmarks_no_newer_than_the_origin(zfs):
    """What a revert does to a data-destroyed snapshot's bookmark: promote moves the bookmarks
    no newer than the clone's origin to the clone; a newer one stays on the old head."""
    z, root = zfs
    _zvol_cloned_at_s1(z, root)
    a, b = f"{root}/a", f"{root}/b"
    z.snapshot([f"{a}@s2"])
    z.bookmark(f"{a}@s1", f"{a}#m1")
    z.bookmark(f"{a}@s2", f"{a}#m2")
    z.promote(b)
    assert list(z.bookmarks(b)) == [f"{b}#m1"]
    assert list(z.bookmarks(a)) == [f"{a}#m2"]
