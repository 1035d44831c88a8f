"""SR.destroy gives an existing dataset back as SR.create found it (issue 18, defect 3): every
property set locally on it, native or user, is what it was before SR.create, values that were
local before restored to them, values that were inherited inherited again, and no zfsaga mark
left. What SR.create changed is recorded on the dataset itself (`org.zfsaga:before:<prop>`),
in the step that changes it, so the record outlives the journal (`zfsaga gc`).

Through the installed entry points, as xapi calls them: exhaustively on the file-shared model
(every tuning key, each found local with another value, local with the same value, or
inherited; with and without a `gc` of the journal between create and destroy), and once on
real ZFS with every key at once."""
from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from tests.conftest import POOL
from tests.test_plugin_verbs import Host, model_host, real_host  # noqa: F401 (fixtures)
from tests.xapi_daemon import ScriptError
from zfsaga.steps.zfs.shared_model import SharedModelZfs

#: The native properties SR.create sets on the dataset (snapdev always; the rest when asked).
NATIVE = ("snapdev", "compression", "sync", "logbias", "primarycache")
#: Each SR.create tuning key: the value asked, and another one the admin could have set.
TUNING = {"compression": ("lz4", "gzip-3"), "sync": ("disabled", "always"),
          "logbias": ("throughput", "latency"), "primarycache": ("metadata", "none"),
          "volblocksize": ("16K", None), "provisioning": ("thick", None)}
#: How each key stood on the dataset before SR.create.
STATES = ("local-other", "local-same", "inherited")


def local_listing(h: Host, dataset: str) -> dict[str, str]:
    """`zfs get all -s local` of the dataset: every local property, native and user. On the
    model: its inheritable natives' local values and its user properties."""
    if isinstance(h.zfs, SharedModelZfs):
        got = h.zfs.get_props(dataset, list(NATIVE))
        return {**{p: got[p].local for p in NATIVE if got[p].local is not None},
                **h.zfs.user_props(dataset)}
    out = subprocess.run(["zfs", "get", "-Hp", "-s", "local", "-o", "property,value", "all",
                          dataset], capture_output=True, text=True, check=True).stdout
    return dict(line.split("\t", 1) for line in out.split("\n") if line)


def gc(h: Host, sr: str) -> None:
    """`zfsaga gc` of every finished saga of the SR: its journal forgets SR.create."""
    out = subprocess.run([sys.executable, "-m", "zfsaga.cli", "--sr", sr, "gc",
                          "--older-than", "0", "--yes"], capture_output=True, text=True,
                         env={**h.xapi.env, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "forgot" in out.stdout and not out.stdout.startswith("forgot 0 "), out.stdout


def lifetime(h: Host, tuning: dict[str, str], *, collect: bool = False,
             uid: str | None = None) -> None:
    """An SR's whole life on the dataset: create (with `tuning`), attach, a volume made and
    destroyed, optionally the journal collected, SR.destroy."""
    config = h.xapi.call("SR.create", uuid=uid or str(uuid.uuid4()), name="SR",
                         description="", configuration={"dataset": h.dataset, **tuning})
    sr = h.xapi.call("SR.attach", configuration=config)
    vol = h.xapi.call("Volume.create", sr=sr, name="v", description="", size=1 << 20,
                      sharable=False)
    h.xapi.call("Volume.destroy", sr=sr, key=vol["key"])
    if collect:
        gc(h, sr)
    h.xapi.call("SR.destroy", sr=sr)



def _prepare(h: Host, key: str, state: str) -> None:
    """Set `key` on the dataset as `state` says, with an admin's own user property beside,
    and a value on the parent for the dataset to inherit."""
    parent = h.dataset.rsplit("/", 1)[0]
    asked, other = TUNING[key]
    h.zfs.set_props(h.dataset, {"com.example:note": "the admin's"})
    if key in NATIVE:
        h.zfs.set_props(parent, {key: other})  # inherited: from the parent, not the default
        if state != "inherited":
            h.zfs.set_props(h.dataset, {key: other if state == "local-other" else asked})


#: Every key in every state; zfsaga's own user properties (volblocksize, provisioning) only
#: unset, as an admin has none of them (test_what_an_earlier_zfsaga_left_... has the rest).
CASES = [(key, state) for key in (*TUNING, "snapdev") for state in STATES
         if key in NATIVE or state == "inherited"]


@pytest.mark.parametrize("collect", [False, True], ids=["journal", "after-gc"])
@pytest.mark.parametrize(("key", "state"), CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_sr_destroy_gives_back_every_local_property(model_host: Host, key: str, state: str,
                                                   collect: bool) -> None:
    if key == "snapdev":
        parent = model_host.dataset.rsplit("/", 1)[0]
        model_host.zfs.set_props(parent, {"snapdev": "hidden"})
        if state != "inherited":
            model_host.zfs.set_props(model_host.dataset, {
                "snapdev": "hidden" if state == "local-other" else "visible"})
        tuning = {}
    else:
        _prepare(model_host, key, state)
        tuning = {key: TUNING[key][0]}
    before = local_listing(model_host, model_host.dataset)
    lifetime(model_host, tuning, collect=collect)
    assert local_listing(model_host, model_host.dataset) == before


def test_every_key_at_once_and_two_lives_in_a_row(model_host: Host) -> None:
    """All keys together, some local and some inherited; then a second SR on the dataset
    (its SR.create must record the admin's values, not what the first SR left)."""
    parent = model_host.dataset.rsplit("/", 1)[0]
    model_host.zfs.set_props(parent, {"sync": "always", "primarycache": "none"})
    model_host.zfs.set_props(model_host.dataset, {"compression": "gzip-3", "logbias": "throughput",
                                      "com.example:note": "the admin's"})
    before = local_listing(model_host, model_host.dataset)
    every = {k: v for k, (v, _) in TUNING.items()}
    lifetime(model_host, every, collect=True)
    assert local_listing(model_host, model_host.dataset) == before
    lifetime(model_host, {"sync": "disabled", "compression": "lz4"})
    assert local_listing(model_host, model_host.dataset) == before


def test_a_retried_create_records_the_admins_values_not_its_own(model_host: Host) -> None:
    """xapi retries an SR.create whose answer it lost: the second one finds zfsaga's values on
    the dataset and must keep the record of the admin's, made by the first."""
    model_host.zfs.set_props(model_host.dataset, {"sync": "always"})
    before = local_listing(model_host, model_host.dataset)
    uid = str(uuid.uuid4())
    tuning = {"sync": "disabled", "compression": "lz4", "volblocksize": "16K"}
    config = model_host.xapi.call("SR.create", uuid=uid, name="SR", description="",
                            configuration={"dataset": model_host.dataset, **tuning})
    again = model_host.xapi.call("SR.create", uuid=uid, name="SR", description="",
                           configuration={"dataset": model_host.dataset, **tuning})
    assert again == config
    sr = model_host.xapi.call("SR.attach", configuration=config)
    model_host.xapi.call("SR.destroy", sr=sr)
    assert local_listing(model_host, model_host.dataset) == before


def test_what_an_earlier_zfsaga_left_is_not_taken_for_the_admins(model_host: Host) -> None:
    """A dataset an earlier zfsaga SR left marked (zfsaga's own user properties, which no
    admin sets): SR.create does not record them as the admin's, and SR.destroy removes
    them with every other zfsaga mark; the admin's own properties stay."""
    model_host.zfs.set_props(model_host.dataset, {"org.zfsaga:volblocksize": "16384",
                                      "org.zfsaga:provisioning": "thick",
                                      "com.example:note": "the admin's", "sync": "always"})
    before = local_listing(model_host, model_host.dataset)
    lifetime(model_host, {"volblocksize": "32K", "sync": "disabled"}, collect=True)
    assert local_listing(model_host, model_host.dataset) == {
        p: v for p, v in before.items() if not p.startswith("org.zfsaga")}


def test_an_sr_with_no_volume_ever_leaves_nothing(model_host: Host) -> None:
    """SR.create then SR.destroy with nothing between: SR.destroy is the SR's first saga that
    writes the journal's witness, after its resolve read the marks; the witness goes too."""
    h = model_host
    before = local_listing(h, h.dataset)
    for _ in range(3):  # each life in a row leaves the dataset as it found it
        config = h.xapi.call("SR.create", uuid=str(uuid.uuid4()), name="SR", description="",
                             configuration={"dataset": h.dataset})
        h.xapi.call("SR.destroy", sr=h.xapi.call("SR.attach", configuration=config))
        assert local_listing(h, h.dataset) == before


def test_a_witness_an_earlier_sr_left_does_not_refuse_a_new_one(model_host: Host) -> None:
    """A journal witness left on a dataset that is no SR (an earlier SR's destroy cut short,
    a dataset received from elsewhere) belongs to no journal: SR.create starts it afresh
    instead of every later call answering that the new SR's journal lost records."""
    from zfsaga.steps.srs import JOURNAL_GEN

    h = model_host
    h.zfs.set_props(h.dataset, {JOURNAL_GEN: "41"})
    config = h.xapi.call("SR.create", uuid=str(uuid.uuid4()), name="SR", description="",
                         configuration={"dataset": h.dataset})
    sr = h.xapi.call("SR.attach", configuration=config)
    vol = h.xapi.call("Volume.create", sr=sr, name="v", description="", size=1 << 20,
                      sharable=False)
    h.xapi.call("Volume.destroy", sr=sr, key=vol["key"])
    h.xapi.call("SR.destroy", sr=sr)
    assert JOURNAL_GEN not in local_listing(h, h.dataset)


def test_a_create_that_is_refused_changes_nothing(model_host: Host) -> None:
    """A tuning value ZFS refuses after the marks were chosen: nothing is left, no record."""
    before = local_listing(model_host, model_host.dataset)
    with pytest.raises(ScriptError):
        model_host.xapi.call("SR.create", uuid=str(uuid.uuid4()), name="SR", description="",
                       configuration={"dataset": model_host.dataset, "sync": "sometimes"})
    assert local_listing(model_host, model_host.dataset) == before


@pytest.mark.realzfs
def test_every_key_at_once_on_real_zfs(real_host: Host) -> None:
    """One SR's life on real ZFS with every tuning key, some found local and some inherited,
    the journal collected in between: `zfs get all -s local` is the same after SR.destroy."""
    h = real_host
    parent = h.dataset.rsplit("/", 1)[0]
    h.zfs.set_props(parent, {"sync": "always", "primarycache": "none"})
    h.zfs.set_props(h.dataset, {"compression": "gzip-3", "logbias": "throughput",
                                "snapdev": "hidden", "com.example:note": "the admin's"})
    before = local_listing(h, h.dataset)
    assert before["compression"] == "gzip-3" and "sync" not in before
    lifetime(h, {k: v for k, (v, _) in TUNING.items()}, collect=True)
    assert local_listing(h, h.dataset) == before
