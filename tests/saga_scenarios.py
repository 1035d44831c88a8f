"""One crash-harness scenario per saga of the catalog (tests/crash_harness.py): the fixture SR
each starts from and the call that starts it, with fixed names so every run makes the same
datasets. A saga added to sagas/catalog.py without a scenario here fails test_crash_points."""
from __future__ import annotations

from tests.crash_harness import BORN, META, TOKEN, MiB, REVERT, Scenario, build_fixture
from zfsaga.sagas import (pool_create, pool_destroy, pool_export, pool_import, sr_create,
                          sr_destroy, sr_set, volume_clone, volume_create, volume_data_destroy,
                          volume_destroy, volume_list_changed_blocks, volume_resize, volume_set,
                          volume_snapshot)
from zfsaga.steps import meta, srs
from zfsaga.steps.zfs.interface import Zfs


def _sr(engine, fx: dict[str, str]) -> tuple[str, str]:
    ident = srs.identify(engine.zfs, fx["sr"])
    return ident.key, ident.guid


def _with_plain_volume(zfs: Zfs, root: str) -> dict[str, str]:
    fx = build_fixture(zfs, root)
    zfs.create_zvol(f"{fx['sr']}/plain", 2 * MiB, props={BORN: "plain", meta.KEY: "plain"})
    return fx


def _unmarked(zfs: Zfs, root: str) -> dict[str, str]:
    """A dataset with volumes in it that zfsaga has not taken on yet."""
    sr = f"{root}/sr"
    zfs.create_filesystem(sr, {BORN: "sr"})
    zfs.create_zvol(f"{sr}/vdi", 2 * MiB, props={BORN: "vdi"})
    return {"sr": sr}


def _retired_origin(zfs: Zfs, root: str) -> dict[str, str]:
    """The fixture after its VDI was destroyed while needed (retired), its newer snapshot
    gone and its older one deferred: destroying the clone lets all of it go."""
    from zfsaga.steps.base import RETIRED

    fx = build_fixture(zfs, root)
    zfs.destroy_snapshots([f"{fx['vdi']}@s2"])
    zfs.destroy_snapshots([f"{fx['vdi']}@s1"], defer=True)
    zfs.set_props(fx["vdi"], {RETIRED: "earlier-saga"})
    return fx


def _create(engine, fx):
    key, guid = _sr(engine, fx)
    return volume_create.start(engine, key, fx["sr"], guid, "new disk", "made by a saga",
                               3 * MiB, True, key="k0")


def _destroy(dataset: str):
    def start(engine, fx):
        key, guid = _sr(engine, fx)
        return volume_destroy.start(engine, key, fx["sr"], guid, f"{fx['sr']}/{dataset}")
    return start


def _keyed(zfs: Zfs, root: str) -> dict[str, str]:
    """The fixture with its VDI keyed as the plugin keys volumes."""
    fx = build_fixture(zfs, root)
    zfs.set_props(fx["vdi"], {meta.KEY: "vdi"})
    return fx


def _snapshot(engine, fx):
    key, guid = _sr(engine, fx)
    return volume_snapshot.start(engine, key, fx["sr"], guid, fx["vdi"], snap="s9")


def _clone(source: str):
    def start(engine, fx):
        key, guid = _sr(engine, fx)
        return volume_clone.start(engine, key, fx["sr"], guid, fx["sr"] + source, True,
                                  key="c9")
    return start


def _set_meta(engine, fx):
    key, guid = _sr(engine, fx)
    return volume_set.start(engine, key, fx["sr"], guid, fx["vdi"],
                            {meta.NAME: meta.encode("new\tname"), META: None})


def _set_sr_meta(engine, fx):
    key, guid = _sr(engine, fx)
    return sr_set.start(engine, key, fx["sr"], guid,
                        {meta.NAME: meta.encode("the SR, renamed"), meta.DESCRIPTION: None})


def _resize(engine, fx):
    key, guid = _sr(engine, fx)
    return volume_resize.start(engine, key, fx["sr"], guid, fx["vdi"], 6 * MiB + 1)


def _emptied(zfs: Zfs, root: str) -> dict[str, str]:
    """An SR whose VDIs xapi destroyed: a retired volume and a retired clone of it are left,
    beside a dataset zfsaga never made."""
    from zfsaga.steps.base import RETIRED

    sr = f"{root}/sr"
    zfs.create_filesystem(sr, {BORN: "sr"})
    srs.adopt(zfs, sr)
    zfs.set_props(sr, {meta.NAME: "the SR"})
    zfs.create_zvol(f"{sr}/old", 2 * MiB, props={BORN: "old", RETIRED: "s1"})
    zfs.snapshot([f"{sr}/old@s"])
    zfs.clone(f"{sr}/old@s", f"{sr}/old-clone", {BORN: "old-clone", RETIRED: "s2"})
    zfs.destroy_snapshots([f"{sr}/old@s"], defer=True)
    zfs.create_zvol(f"{sr}/foreign", 2 * MiB, props={BORN: "foreign"})
    return {"sr": sr}


def _keyed_family(zfs: Zfs, root: str) -> dict[str, str]:
    """A VDI keyed as the plugin keys it, with three snapshots keyed as Volume.snapshot keys
    them and a VM cloned from the oldest, beside a dataset zfsaga never made."""
    sr = f"{root}/sr"
    zfs.create_filesystem(sr, {BORN: "sr"})
    srs.adopt(zfs, sr)
    vdi = f"{sr}/vdi"
    zfs.create_zvol(vdi, 4 * MiB, sparse=False,
                    props={BORN: "vdi", META: "vdi metadata", meta.KEY: "vdi"})
    for snap in ("s1", "s2", "s3"):
        zfs.snapshot([f"{vdi}@{snap}"], {BORN: snap, meta.KEY: f"vdi@{snap}"})
    zfs.clone(f"{vdi}@s1", f"{sr}/vm", {BORN: "vm", meta.KEY: "vm"})
    zfs.create_zvol(f"{sr}/other", 2 * MiB, props={BORN: "other"})
    return {"sr": sr, "vdi": vdi, "snapshot": f"{vdi}@s1",
            "keys": "vdi vdi@s1 vdi@s2 vdi@s3 vm"}


def _reverted_once(zfs: Zfs, root: str) -> dict[str, str]:
    """What a revert of that VDI to s1 leaves, built by hand (a saga run here would be a
    stranger to the harness's fresh journal): s2 and s3 on the retired old head, which is a
    clone of vdi@s1, and the SR's index saying so."""
    from zfsaga.steps.base import RETIRED
    from zfsaga.steps.index import index_prop

    sr = f"{root}/sr"
    zfs.create_filesystem(sr, {BORN: "sr"})
    srs.adopt(zfs, sr)
    old, vdi = f"{sr}/vdi.old-t9", f"{sr}/vdi"
    zfs.create_zvol(old, 4 * MiB, sparse=False,
                    props={BORN: "vdi-before", META: "vdi metadata", meta.KEY: "vdi"})
    for snap in ("s1", "s2", "s3"):
        zfs.snapshot([f"{old}@{snap}"], {BORN: snap, meta.KEY: f"vdi@{snap}"})
    zfs.clone(f"{old}@s1", vdi, {BORN: "vdi", META: "vdi metadata", meta.KEY: "vdi"},
              reserve=True)
    zfs.promote(vdi)
    zfs.set_props(old, {RETIRED: "an-earlier-revert"})
    zfs.set_props(sr, {index_prop("vdi@s2"): "vdi.old-t9", index_prop("vdi@s3"): "vdi.old-t9"})
    zfs.create_zvol(f"{sr}/other", 2 * MiB, props={BORN: "other"})
    return {"sr": sr, "vdi": vdi, "snapshot": f"{old}@s3", "keys": "vdi vdi@s1 vdi@s2 vdi@s3"}


def each_key_once(zfs: Zfs, fx: dict[str, str]) -> list[str]:
    """What xapi reads at this moment: SR.ls shows every key exactly once, and a lookup by
    key (Volume.stat) finds each, whatever step a saga stopped at."""
    from zfsaga.plugin.context import Sr
    from zfsaga.plugin.volumes import NATIVE, settled
    from zfsaga.steps.base import guid_of

    sr, want = fx["sr"], sorted(fx["keys"].split())
    shown = sorted(user[meta.KEY] for _, _, user in
                   settled(sr, zfs.list_tree(sr, NATIVE), zfs.tree_user_props(sr)))
    problems = [] if shown == want else [f"SR.ls shows {shown}, not each of {want} once"]
    reader = Sr(zfs, sr, guid_of(zfs, sr) or "")
    for key in want:
        try:
            reader.find(key)
        except Exception as exc:
            problems.append(f"Volume.stat {key}: {type(exc).__name__}: {exc}")
    return problems


def _revert(engine, fx):
    from zfsaga.sagas import volume_revert as revert

    return revert.start(engine, fx["sr"], fx["vdi"], fx["snapshot"], TOKEN)


def _tracked_family(zfs: Zfs, root: str) -> dict[str, str]:
    """The keyed family with changed block tracking on its VDI (its snapshots inherit it)."""
    fx = _keyed_family(zfs, root)
    zfs.set_props(fx["vdi"], {meta.CBT: "on"})
    return fx


def _data_destroy(snap: str):
    def start(engine, fx):
        key, guid = _sr(engine, fx)
        return volume_data_destroy.start(engine, key, fx["sr"], guid, f"{fx['vdi']}@{snap}")
    return start


def _count_to_now(engine, fx):
    """The count up to the live volume: its read (the send, on real ZFS) is not the saga's
    concern here; the temporary snapshot around it is."""
    key, guid = _sr(engine, fx)
    return volume_list_changed_blocks.start(engine, key, fx["sr"], guid, fx["vdi"],
                                            lambda facts: None)


def _metadata_only(zfs: Zfs, root: str) -> dict[str, str]:
    """The tracked family after data_destroy of s3 and a revert that left s3's bookmark on
    the retired old head, built by hand: the SR's record of it names the bookmark."""
    from zfsaga.steps import metadata_only
    from zfsaga.steps.base import RETIRED

    fx = _tracked_family(zfs, root)
    vdi, sr = fx["vdi"], fx["sr"]
    guid = zfs.get_props(f"{vdi}@s3", ["guid"])["guid"].value
    user = zfs.user_props(f"{vdi}@s3")
    zfs.bookmark(f"{vdi}@s3", f"{vdi}#s3")
    zfs.destroy_snapshots([f"{vdi}@s3"])
    zfs.rename(vdi, f"{sr}/vdi.old-t8")
    zfs.clone(f"{sr}/vdi.old-t8@s2", vdi, {BORN: "vdi-new", meta.KEY: "vdi", meta.CBT: "on"})
    zfs.promote(vdi)
    zfs.set_props(f"{sr}/vdi.old-t8", {RETIRED: "an-earlier-revert"})
    zfs.set_props(sr, {meta.metadata_prop("vdi@s3"): metadata_only.encode(
        user, str(4 * MiB), guid, f"{vdi}#s3")})
    return fx


def _destroy_metadata_only(engine, fx):
    key, guid = _sr(engine, fx)
    return volume_destroy.start(engine, key, fx["sr"], guid, f"{fx['sr']}/vdi#s3")


def _sr_destroy(engine, fx):
    key, guid = _sr(engine, fx)
    return sr_destroy.start(engine, key, fx["sr"], guid)


#: The model takes any path not in a pool; the power-loss harness gives real ones
#: (tests/pool_power.py): a pool scenario's fixture carries the devices it was built on.
DEVICES = ["/dev/disk/by-id/fake-a", "/dev/disk/by-id/fake-b"]


def devices_of(fx: dict[str, str]) -> list[str]:
    return fx["devices"].split(",")


def _no_pool(zfs: Zfs, root: str, devices: list[str] = DEVICES) -> dict[str, str]:
    """Two free devices and no pool `zpnew`."""
    return {"sr": "zpnew", "devices": ",".join(devices)}


def _made_pool(zfs: Zfs, root: str, exported: bool = False,
               devices: list[str] = DEVICES) -> dict[str, str]:
    """A pool an earlier SR.create made, holding a volume and the SR's marks."""
    zfs.create_pool("zpmade", devices, "mirror",
                    props={srs.MADE_POOL: "earlier/create", BORN: "pool"})
    zfs.set_props("zpmade", {srs.SR_MARK: "g"})
    zfs.create_zvol("zpmade/vdi", 2 * MiB, props={BORN: "vdi", meta.KEY: "vdi"})
    guid = zfs.pool_guid("zpmade")
    if exported:
        zfs.export_pool("zpmade")
    return {"sr": "zpmade", "pool_guid": guid, "devices": ",".join(devices)}


def _exported_pool(zfs: Zfs, root: str, devices: list[str] = DEVICES) -> dict[str, str]:
    return _made_pool(zfs, root, exported=True, devices=devices)


def _pool_create(engine, fx):
    props = {meta.SR_UUID: "uuid-0", meta.NAME: meta.encode("on devices"),
             meta.PROVISIONING: "thin", "snapdev": "visible", "compression": "lz4"}
    return pool_create.start(engine, fx["sr"], devices_of(fx), "mirror", 12, props)


SCENARIOS = {
    "pool.create": [Scenario("pool.create (SR.create on devices: make the pool, mark it)",
                             _no_pool, _pool_create)],
    "pool.import": [Scenario("pool.import (SR.attach of a made pool, exported)",
                             _exported_pool,
                             lambda engine, fx: pool_import.start(engine, fx["sr"],
                                                                  fx["pool_guid"],
                                                                  devices_of(fx)))],
    "pool.export": [Scenario("pool.export (SR.detach of a made pool)", _made_pool,
                             lambda engine, fx: pool_export.start(engine, fx["sr"],
                                                                  fx["pool_guid"],
                                                                  devices_of(fx)))],
    "pool.destroy": [Scenario("pool.destroy (SR.destroy of a made pool)", _made_pool,
                              lambda engine, fx: pool_destroy.start(engine, fx["sr"],
                                                                    fx["pool_guid"],
                                                                    "earlier/create"))],
    "sr.destroy": [Scenario("sr.destroy (retired volumes collected, the dataset kept)",
                            _emptied, _sr_destroy)],
    "volume.snapshot": [Scenario("volume.snapshot", _keyed, _snapshot)],
    "volume.clone": [Scenario("volume.clone (of a snapshot)", _keyed, _clone("/vdi@s2")),
                     Scenario("volume.clone (of a writable volume: hidden base snapshot)",
                              _keyed, _clone("/vdi"))],
    "volume.resize": [Scenario("volume.resize (thick: the reservation grows too)",
                               build_fixture, _resize)],
    "volume.revert": [REVERT,
                      Scenario("volume.revert (by key, to the oldest of three snapshots)",
                               _keyed_family, _revert, each_key_once),
                      Scenario("volume.revert (by key, to a snapshot on a retired head)",
                               _reverted_once, _revert, each_key_once)],
    "volume.create": [Scenario("volume.create", build_fixture, _create)],
    "volume.destroy": [Scenario("volume.destroy", _with_plain_volume, _destroy("plain")),
                       Scenario("volume.destroy (with dependents: retired, kept)",
                                build_fixture, _destroy("vdi")),
                       Scenario("volume.destroy (a snapshot with a clone: deferred)",
                                build_fixture, _destroy("vdi@s1")),
                       Scenario("volume.destroy (a clone: its origin's retired volume "
                                "collected)", _retired_origin, _destroy("vm-clone")),
                       Scenario("volume.destroy (a metadata-only VDI whose bookmark a revert "
                                "left on a retired head: the head collected)", _metadata_only,
                                _destroy_metadata_only)],
    "volume.set": [Scenario("volume.set", build_fixture, _set_meta)],
    "volume.data_destroy": [
        Scenario("volume.data_destroy (no clone: the snapshot goes)", _tracked_family,
                 _data_destroy("s3")),
        Scenario("volume.data_destroy (a cloned snapshot: deferred)", _tracked_family,
                 _data_destroy("s1"))],
    "volume.list_changed_blocks": [
        Scenario("volume.list_changed_blocks (up to the live volume)", _tracked_family,
                 _count_to_now)],
    "sr.set": [Scenario("sr.set", build_fixture, _set_sr_meta)],
    "sr.create": [Scenario("sr.create", _unmarked,
                           lambda engine, fx: sr_create.start(engine, fx["sr"], "uuid-0", "SR",
                                                              "desc", "thin"))],
}
