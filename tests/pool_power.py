"""Power loss in the pool sagas (issue 18): cut the power at every flush of a pool's create,
import, export or destroy, boot as a host would, recover the host journal, check. Runs in the
real-ZFS guest, as root, on the power-loss harness's disks (tests/power_harness.py).

The pool sagas journal on the host (plugin/pools.py host_engine: a dom0's /var/lib/zfsaga on
its root ext4), and a host imports at boot the pools its cache file lists (zfs-import-cache:
`zpool import -c /etc/zfs/zpool.cache -aN`), a file the kernel writes on that same root. So a
cut must see the host's filesystem and the pool's devices as one disk would leave them: both
live on one logged device, which orders their writes and records every flush of either (the
host journal's fsync is an ext4 commit there).

    log-writes map over the pool disk, and on it three dm-linear slices:
      host  an ext4 (the dom0's root): the host journal of each saga (s<i>/journal.db) and
            etc-zfs/, bind-mounted over the guest's /etc/zfs while the harness runs (the
            guest's root is a tmpfs overlay: nothing outside the guest changes), so the
            kernel writes zpool.cache there
      a, b  the devices the scenarios make or import their mirror on

The scenarios run one after another on the same two devices (their pools wiped between
them), each with a host journal of its own. Replay of a flush point: a throwaway snapshot of
the copy disk, the same slices over it (the same device paths the cache file names), the ext4
mounted (its journal replays), /etc/zfs bound, the boot's import from the cache file, then
what the first SR call after a reboot does (the host journal's recovery), then the crash
harness's invariants: the journal holds at most one saga, terminal; the pool is its before-
or after-state (absent, exported or destroyed is "absent"); a compensated saga left nothing
tagged; a second recovery makes no ZFS call; the pool's volume reads back with its checksum.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.crash_harness import Case, Scenario, sr_state
from tests.power_harness import (LOGW, SNAP, DataWriter, HarnessError, PowerHarness, Recording,
                                 Segment, data_sums, dm_create, dm_exists, dm_remove,
                                 recover_and_check, run)

HOST_MAP, DEVICE_MAPS = "zfsaga-pl-host", ("zfsaga-pl-a", "zfsaga-pl-b")
HOST_SECTORS = (128 << 20) // 512
HOST_MOUNT = "/run/zfsaga-pl-host"
ETC_ZFS = "/etc/zfs"
CACHE_FILE = f"{ETC_ZFS}/zpool.cache"
#: The pools the scenarios make (tests/saga_scenarios.py).
POOLS = ("zpnew", "zpmade")
#: What zeroing a device's ends takes away: ZFS's four labels (two at each end, 256 KiB each).
LABEL_ZONE = 4 << 20


def is_pool_scenario(scenario: Scenario) -> bool:
    return scenario.kind.startswith("pool.")


class PoolPowerHarness(PowerHarness):
    """Records pool sagas, one after another, in one log, then replays their flush points as
    a rebooted host would see them (see the module's docstring)."""

    # -- the host's disk, as device-mapper slices of one device -------------------------------
    def _map_slices(self, under: str) -> tuple[str, list[str]]:
        """The host slice and the two device slices over `under`: their paths."""
        rest = self.size - HOST_SECTORS
        each = rest // len(DEVICE_MAPS)
        host = dm_create(HOST_MAP, f"0 {HOST_SECTORS} linear {under} 0")
        devices = [dm_create(name, f"0 {each} linear {under} {HOST_SECTORS + i * each}")
                   for i, name in enumerate(DEVICE_MAPS)]
        return host, devices

    @staticmethod
    def _unmap_slices() -> None:
        for name in (*DEVICE_MAPS, HOST_MAP):
            if dm_exists(name):
                dm_remove(name)

    @staticmethod
    def _mount_host(host: str) -> None:
        """Mount the host's filesystem (an unclean one replays its journal) and put its
        etc-zfs over /etc/zfs, where the kernel writes the cache file and the boot reads it."""
        os.makedirs(HOST_MOUNT, exist_ok=True)
        run("mount", "-t", "ext4", host, HOST_MOUNT)
        os.makedirs(f"{HOST_MOUNT}/etc-zfs", exist_ok=True)
        run("mount", "--bind", f"{HOST_MOUNT}/etc-zfs", ETC_ZFS)

    @staticmethod
    def _unmount_host() -> None:
        for target in (ETC_ZFS, HOST_MOUNT):
            if os.path.ismount(target):  # /etc/zfs is one only while ours is bound there
                run("umount", target)

    @staticmethod
    def _export_pools(destroy: bool = False) -> None:
        """Every pool of the scenarios that is imported: exported (a replay's clean-up) or
        destroyed (between recordings: the next fixture takes the devices)."""
        for pool in POOLS:
            if subprocess.run(["zpool", "list", pool], capture_output=True).returncode != 0:
                continue
            for _ in range(30):
                run("udevadm", "settle", check=False)
                proc = subprocess.run(["zpool", "destroy" if destroy else "export", "-f",
                                       pool], capture_output=True, text=True)
                if proc.returncode == 0:
                    break
                time.sleep(0.3)
            else:
                raise HarnessError(f"zpool {'destroy' if destroy else 'export'} {pool}: "
                                   f"{proc.stderr.strip()}")

    @staticmethod
    def _wipe(devices: list[str]) -> None:
        """Zero both ends of each device: no label of an earlier pool is left for the next
        fixture's `zpool create` (never forced) to refuse, nor for an import to find."""
        zeros = bytes(LABEL_ZONE)
        for dev in devices:
            fd = os.open(dev, os.O_WRONLY)
            try:
                size = os.lseek(fd, 0, os.SEEK_END)
                os.pwrite(fd, zeros, 0)
                os.pwrite(fd, zeros, size - LABEL_ZONE)
                os.fsync(fd)
            finally:
                os.close(fd)

    def _clear(self) -> None:
        self._export_pools()
        self._unmount_host()
        self._unmap_slices()
        super()._clear()

    # -- recording ---------------------------------------------------------------------------
    def record(self, scenarios: list[Scenario]) -> Recording:
        started = time.monotonic()
        logw = self._start_log()
        segments = []
        try:
            host, devices = self._map_slices(logw)
            run("mkfs.ext4", "-q", "-F", host, timeout=300)
            self._mount_host(host)
            for i, scenario in enumerate(scenarios):
                segments.append(self._record_one(i, scenario, devices))
            self._export_pools(destroy=True)
        finally:
            self._unmount_host()
            self._unmap_slices()
        dm_remove(LOGW)
        return Recording(self.read_points(segments), segments, time.monotonic() - started)

    def _record_one(self, i: int, scenario: Scenario, devices: list[str]) -> Segment:
        self._export_pools(destroy=True)
        self._wipe(devices)
        state = Path(HOST_MOUNT, f"s{i}")
        state.mkdir()
        hooks, self.zfs.hooks = self.zfs.hooks, DataWriter()
        try:
            fixture = scenario.build(self.zfs, f"s{i}", devices=devices)
        finally:
            self.zfs.hooks = hooks
        fixture["host_state"] = f"s{i}"
        pool = fixture["sr"]
        seg = Segment(scenario, fixture, sr_state(self.zfs, pool, devices))
        seg.sums_before = data_sums(seg.before, pool)
        run("sync")  # the fixture and the host's files are on disk before the saga starts
        self._run_marked(i, seg, state)
        seg.after = sr_state(self.zfs, pool, devices)
        seg.sums_after = data_sums(seg.after, pool)
        return seg

    # -- replay ------------------------------------------------------------------------------
    def _check_point_as_is(self, seg: Segment, point: int, loop: str) -> Case:
        case = Case(point, "power-cut" if self.defect is None else self.defect, None)
        snap = dm_create(SNAP, f"0 {self.size} snapshot {self.copy_disk} {loop} N 8")
        try:
            host, _ = self._map_slices(snap)
            self._mount_host(host)
            boot()
            state = Path(HOST_MOUNT, seg.fixture["host_state"])
            case.problems, case.status = recover_and_check(self.zfs, seg, state)
        except HarnessError:
            raise
        except Exception as exc:  # a zfsaga failure at this point is a finding, not a stop
            case.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._export_pools()
            self._unmount_host()
            self._unmap_slices()
            dm_remove(SNAP)
        return case


def boot() -> None:
    """What a host's boot imports: the pools its cache file lists (zfs-import-cache.service,
    which runs only when the file is there and not empty), without mounting them (-N; SR
    calls need none of their filesystems mounted)."""
    if os.path.exists(CACHE_FILE) and os.path.getsize(CACHE_FILE) > 0:
        # The service's own outcome does not stop the boot, nor this: a pool it could not
        # import is simply not imported, which the recovery then sees.
        run("zpool", "import", "-c", CACHE_FILE, "-a", "-N", check=False, timeout=600)
