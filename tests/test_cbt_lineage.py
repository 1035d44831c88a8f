"""Volume.list_changed_blocks across reverts (issue 21), on real ZFS through the installed entry
points: what "the history" of a volume means once Volume.revert has cut it.

A revert to a snapshot clones it and promotes the clone (sagas/volume_revert.py): the volume's
disk then descends from that snapshot, and every point newer than it (snapshots, and the
bookmark of a data-destroyed one, which promote leaves on the old head) is on another lineage.
A snapshot taken after the revert therefore has no changed blocks since such a point: the
verb must say so (Invalid_argument, copy the disk whole), never answer a bitmap. A point no
newer than the revert's target stays in the history (its bookmark moves with promote), and the
bitmap since it holds exactly what was written on the way to the target and after the revert.
"""
from __future__ import annotations

import subprocess

import pytest

# The real host of the CBT tests (fixture: pytest finds it imported here).
from tests.test_cbt_changed import G, _changed, _marked
from tests.test_cbt_metadata import real  # noqa: F401
from tests.test_plugin_verbs import Host
from tests.xapi_daemon import ScriptError

MiB = 1 << 20


def _block(host: Host, sr: str, key: str, index: int) -> None:
    """Write 64 KiB block `index` of the live volume `key`: distinct bytes, made durable."""
    from tests.stream_fixtures import device, write

    # A revert puts a new zvol under the old name: wait until the link names the new one.
    subprocess.run(["udevadm", "settle", "--timeout=60"], check=False)
    write(device(f"{sr}/{key}"), index * G, b"%08d" % index * (G // 8))


@pytest.mark.realzfs
@pytest.mark.timeout(600)
def test_changed_blocks_follow_the_volume_through_reverts_on_real_zfs(real: Host) -> None:
    """S0, write 1, A, write 10, B, data_destroy A (a bookmark). Revert to S0, write 20, C1:
    C1 descends from S0, not from A or B, so both are refused with zero changes to ZFS, and
    S0 -> C1 is block 20. Revert to B (on the retired head the first revert left), write 30,
    C2: A's bookmark came back into the history with B, and A -> C2 is blocks 10 and 30."""
    from tests.stream_fixtures import device, write

    sr = real.sr()
    call = real.xapi.call
    size = 4 * MiB
    vol = call("Volume.create", sr=sr, name="V", description="", size=size, sharable=False)
    key = vol["key"]
    call("Volume.enable_cbt", sr=sr, key=key)
    # Written whole first: no never-written hole a send may count (the bitmaps are exact).
    write(device(f"{sr}/{key}"), 0, b"w" * size)
    s0 = call("Volume.snapshot", sr=sr, key=key)["key"]
    _block(real, sr, key, 1)
    a = call("Volume.snapshot", sr=sr, key=key)["key"]
    _block(real, sr, key, 10)
    b = call("Volume.snapshot", sr=sr, key=key)["key"]
    call("Volume.data_destroy", sr=sr, key=a)

    call("Volume.revert", sr=sr, snapshot=s0, key=key)  # older than A
    _block(real, sr, key, 20)
    c1 = call("Volume.snapshot", sr=sr, key=key)["key"]
    before = real.zfs_state()
    for since in (a, b):  # the bookmark on the retired head, and a snapshot there
        with pytest.raises(ScriptError) as err:
            _changed(real, sr, since, c1)
        assert err.value.name == "Invalid_argument", (since, err.value.params)
        assert "is not in the history of" in err.value.params[1], err.value.params
        assert real.zfs_state() == before, since
    assert _marked(_changed(real, sr, s0, c1)) == {20}

    call("Volume.revert", sr=sr, snapshot=b, key=key)  # newer than A: A is history again
    _block(real, sr, key, 30)
    c2 = call("Volume.snapshot", sr=sr, key=key)["key"]
    assert call("Volume.stat", sr=sr, key=a)["volume_type"] == ["CBT_Metadata", None]
    assert _marked(_changed(real, sr, a, c2)) == {10, 30}
    assert _marked(_changed(real, sr, b, c2)) == {30}
