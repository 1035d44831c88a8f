"""The real-ZFS harness: boot a QEMU guest over the host's own root filesystem, load the zfs
module, create a pool on a sparse disk, run one command inside, and hand its exit status and
output back to the host. Where /dev/zfs exists (a ZFS host, an XCP-ng dom0) the command runs
directly, on a pool the caller names.

Usage: python -m zfsaga.guest [--timeout S] [--memory MB] -- COMMAND [ARG...]
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

INIT = Path(__file__).with_name("init.sh")
POOL = "zfsagatest"
DISK_SIZE = 2 * 1024**3
#: Spare disks for the fault harnesses (tests/power_harness.py): a pool's disk, the
#: log-writes log, the replay's copy of the pool's disk. Sparse, so free until written.
FAULT_DISKS = (("pool", 512 * 1024**2), ("log", 2 * 1024**3), ("copy", 512 * 1024**2))


class GuestError(RuntimeError):
    """The guest could not run the command (no kernel, no module, failed boot, timeout)."""


def debian_kernel(modules: str = "/lib/modules", boot: str = "/boot") -> str:
    """The newest Debian kernel installed under /boot whose modules include zfs.ko."""
    found = []
    for version in (os.listdir(modules) if os.path.isdir(modules) else []):
        if not Path(boot, f"vmlinuz-{version}").exists():
            continue
        mods = Path(modules, version)
        if any(mods.rglob("zfs.ko*")):
            found.append(version)
    if not found:
        raise GuestError("no Debian kernel with a built zfs.ko under /boot and /lib/modules: "
                         "run tools/setup-host.sh (make setup)")
    return sorted(found, key=lambda v: [int(x) if x.isdigit() else x
                                        for x in v.replace("-", ".").split(".")])[-1]


def qemu_argv(kernel: str, outdir: Path, disk: Path, memory: int, cpus: int,
              spares: tuple[Path, ...] = ()) -> list[str]:
    """The verified command line: TCG (a KVM guest hangs in firmware here), host root over 9p."""
    append = ("root=hostroot rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=262144 "
              f"ro init={INIT.resolve()} console=ttyS0 panic=-1 quiet")
    return ["qemu-system-x86_64", "-accel", "tcg,thread=multi", "-m", str(memory),
            "-smp", str(cpus), "-nographic", "-no-reboot",
            "-kernel", f"/boot/vmlinuz-{kernel}", "-initrd", f"/boot/initrd.img-{kernel}",
            "-append", append,
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                       "multidevs=remap",
            "-virtfs", f"local,path={outdir},mount_tag=out,security_model=none",
            "-drive", f"file={disk},if=virtio,format=raw",
            *(arg for spare in spares
              for arg in ("-drive", f"file={spare},if=virtio,format=raw"))]


def _follow(path: Path, stop: threading.Event, sink) -> None:
    """Stream the guest's log file to the host's stdout while the guest runs."""
    pos = 0
    while True:
        done = stop.is_set()
        if path.exists():
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
                pos += len(chunk)
            if chunk:
                sink.write(chunk.decode(errors="replace"))
                sink.flush()
        if done:
            return
        time.sleep(0.5)


def forwarded_env() -> dict[str, str]:
    """The host's ZFSAGA_* settings (test sizes, fault switches) reach the guest's command."""
    return {k: v for k, v in os.environ.items()
            if k.startswith("ZFSAGA_") and k not in ("ZFSAGA_TEST_POOL", "ZFSAGA_WORKDIR")}


#: run_in_guest's status when `cut` killed the guest.
KILLED = -9


def run_in_guest(command: list[str], *, timeout: float = 3000, memory: int = 3072,
                 cpus: int | None = None, workdir: str | None = None,
                 env: dict[str, str] | None = None, spares_dir: Path | None = None,
                 cut: Callable[[Path], bool] | None = None,
                 keep: tuple[str, ...] = (), keep_to: Path | None = None) -> int:
    """Boot the guest, run `command` (argv) in `workdir`, stream its output, return its status.

    For the power-cut tests: the spare disks live in `spares_dir` (kept between boots) when
    given; `cut(outdir)` is polled while the guest runs, and when it says so QEMU is killed at
    once (no shutdown, no sync: the host keeps every write QEMU accepted), returning KILLED;
    the files named in `keep` are copied from the guest's out share to `keep_to`."""
    if shutil.which("qemu-system-x86_64") is None:
        raise GuestError("qemu-system-x86_64 is not installed: run make setup")
    kernel = debian_kernel()
    cpus = cpus or os.cpu_count() or 2
    with tempfile.TemporaryDirectory(prefix="zfsaga-guest-") as tmp:
        outdir = Path(tmp, "out")
        outdir.mkdir()
        disk = Path(tmp, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(DISK_SIZE)  # sparse
        spares = tuple(Path(spares_dir or tmp, f"{role}.img") for role, _ in FAULT_DISKS)
        for spare, (_, size) in zip(spares, FAULT_DISKS):
            if not spare.exists():
                with open(spare, "wb") as f:
                    f.truncate(size)
        guest_env = {"ZFSAGA_TEST_POOL": POOL, "ZFSAGA_WORKDIR": workdir or os.getcwd(),
                     "ZFSAGA_IN_GUEST": "1", "HOME": "/root", "LANG": "C.UTF-8",
                     "PYTHONDONTWRITEBYTECODE": "1",
                     # virtio disks take the letters in order: vda is the test pool's.
                     "ZFSAGA_FAULT_DISKS": " ".join(f"/dev/vd{chr(ord('b') + i)}"
                                                    for i in range(len(spares))),
                     **forwarded_env(), **(env or {})}
        (outdir / "env.sh").write_text("".join(
            f"export {k}={shlex.quote(v)}\n" for k, v in guest_env.items()))
        (outdir / "cmd.sh").write_text(shlex.join(command) + "\n")
        console = open(outdir / "console.log", "wb")
        started = time.monotonic()
        stop = threading.Event()
        follower = threading.Thread(target=_follow, args=(outdir / "log", stop, sys.stdout),
                                    daemon=True)
        follower.start()
        proc = subprocess.Popen(qemu_argv(kernel, outdir, disk, memory, cpus, spares),
                                stdin=subprocess.DEVNULL, stdout=console, stderr=console)
        killed = False
        try:
            while proc.poll() is None:
                if cut is not None and cut(outdir):
                    proc.kill()  # SIGKILL: the power cut
                    killed = True
                    break
                if time.monotonic() - started > timeout:
                    proc.kill()
                    proc.wait()
                    stop.set()
                    follower.join()
                    raise GuestError(f"guest did not power off within {timeout:.0f}s\n"
                                     + _tail(outdir, "boot.log") + _tail(outdir, "console.log"))
                time.sleep(0.02 if cut is not None else 0.5)
            proc.wait()
        finally:
            console.close()
        stop.set()
        follower.join()
        for name in keep:
            if (outdir / name).exists() and keep_to is not None:
                shutil.copy(outdir / name, keep_to / name)
        if killed:
            print(f"guest: killed after {time.monotonic() - started:.1f}s", file=sys.stderr)
            return KILLED
        rc_file = outdir / "rc"
        if not rc_file.exists():
            raise GuestError("guest powered off without running the command\n"
                             + _tail(outdir, "boot.log") + _tail(outdir, "console.log"))
        rc = int(rc_file.read_text().strip() or 99)
        if rc == 97:
            raise GuestError("guest set-up failed\n" + _tail(outdir, "boot.log"))
        print(f"guest: command exited {rc} after {time.monotonic() - started:.1f}s "
              f"(kernel {kernel}, TCG)", file=sys.stderr)
        return rc


def _tail(outdir: Path, name: str, lines: int = 40) -> str:
    path = outdir / name
    if not path.exists():
        return f"(no {name})\n"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- {name} (last {len(text)} lines) ---\n" + "\n".join(text) + "\n"


def run_direct(command: list[str], pool: str) -> int:
    """On a host with /dev/zfs: run the command there, on an existing pool the caller owns."""
    env = dict(os.environ, ZFSAGA_TEST_POOL=pool)
    subprocess.run(["zfs", "version"], check=False)
    return subprocess.run(command, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zfsaga.guest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=3000)
    parser.add_argument("--memory", type=int, default=3072, help="guest memory in MB")
    parser.add_argument("--direct-pool", default=os.environ.get("ZFSAGA_DIRECT_POOL"),
                        help="with /dev/zfs on this host, run directly on this pool")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    if os.path.exists("/dev/zfs") and args.direct_pool:
        return run_direct(command, args.direct_pool)
    try:
        return run_in_guest(command, timeout=args.timeout, memory=args.memory)
    except GuestError as exc:
        print(f"guest: ERROR: {exc}", file=sys.stderr)
        return 96


if __name__ == "__main__":
    raise SystemExit(main())
