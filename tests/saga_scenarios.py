"""One crash-harness scenario per saga of the catalog (tests/crash_harness.py): the fixture SR
each starts from and the call that starts it, with fixed names so every run makes the same
datasets. A saga added to sagas/catalog.py without a scenario here fails test_crash_points."""
from __future__ import annotations

from tests.crash_harness import BORN, META, MiB, REVERT, Scenario, build_fixture
from zfsaga.sagas import set_meta, sr_create, volume_create, volume_destroy, volume_resize
from zfsaga.steps import meta, srs
from zfsaga.steps.zfs import Zfs


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


def _create(engine, fx):
    key, guid = _sr(engine, fx)
    return volume_create.start(engine, key, fx["sr"], guid, "new disk", "made by a saga",
                               3 * MiB, True, key="k0")


def _destroy(dataset: str):
    def start(engine, fx):
        key, guid = _sr(engine, fx)
        return volume_destroy.start(engine, key, fx["sr"], guid, f"{fx['sr']}/{dataset}")
    return start


def _set_meta(engine, fx):
    key, guid = _sr(engine, fx)
    return set_meta.start(engine, key, fx["sr"], guid, fx["vdi"],
                          {meta.NAME: meta.encode("new\tname"), META: None})


def _resize(engine, fx):
    key, guid = _sr(engine, fx)
    return volume_resize.start(engine, key, fx["sr"], guid, fx["vdi"], 6 * MiB + 1)


SCENARIOS = {
    "volume.resize": [Scenario("volume.resize (thick: the reservation grows too)",
                               build_fixture, _resize)],
    "vdi.revert": [REVERT],
    "volume.create": [Scenario("volume.create", build_fixture, _create)],
    "volume.destroy": [Scenario("volume.destroy", _with_plain_volume, _destroy("plain")),
                       Scenario("volume.destroy (with dependents: retired, kept)",
                                build_fixture, _destroy("vdi"))],
    "meta.set": [Scenario("meta.set", build_fixture, _set_meta)],
    "sr.create": [Scenario("sr.create", _unmarked,
                           lambda engine, fx: sr_create.start(engine, fx["sr"], "uuid-0", "SR",
                                                              "desc", "thin"))],
}
