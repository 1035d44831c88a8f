"""The datapath verbs (datapath/zfsaga/), for the URIs Volume.* results carry:
`zfsaga:///dev/zvol/<dataset>`. attach hands xapi the zvol's own block device, proven to be
this volume's; activate is exclusive per host, activate_readonly shared; every verb is
idempotent. What is active where is host-local state (tmpfs: a reboot deactivates all).

udev makes `/dev/zvol/...` links asynchronously, and a stale link can name another zvol's
device (Incus met this under load): each candidate device is asked its dataset's name with the
BLKZNAME ioctl before it is returned, and the wait for it is bounded."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from zfsaga.plugin.errors import Busy, InvalidArgument, SmapiError, VolumeDoesNotExist

SCHEME = "zfsaga"
PREFIX = "/dev/zvol/"
#: BLKZNAME = _IOR(0x12, 125, char[256]): the zvol's dataset name, from the zfs module.
BLKZNAME = (2 << 30) | (256 << 16) | (0x12 << 8) | 125
def device_wait() -> float:
    # Read per call, never at import: a warm server's child takes the call's environment.
    return float(os.environ.get("ZFSAGA_DEVICE_WAIT", "30"))


class ActivatedElsewhere(SmapiError):
    name = "Activated_on_this_host"


def target(uri: str) -> str:
    """The dataset a URI of zfsaga's names (validated: never a path outside /dev/zvol)."""
    from zfsaga.steps.zfs import names
    from zfsaga.steps.zfs.errors import ZfsError

    try:
        parts = urlsplit(uri)
    except ValueError:  # a malformed authority ("zfsaga://[::1"): no URI of ours
        parts = None
    if parts is None or parts.scheme != SCHEME or parts.netloc or not parts.path.startswith(PREFIX):
        raise InvalidArgument(f"{uri!r} is not a zfsaga volume URI ({SCHEME}://{PREFIX}...)")
    name = parts.path[len(PREFIX):]
    try:
        names.check_any(name)
    except ZfsError as exc:
        raise InvalidArgument(f"{uri!r}: {exc}") from None
    return name


def vdi(uri: str, domain: str | None = None) -> str:
    """The dataset a URI names, checked to be a VDI xapi can see now: a volume at its home or
    a snapshot, keyed by zfsaga, not retired, not marked for deferred destroy, in an SR whose
    mark is present; Volume_does_not_exist at once otherwise (a destroyed volume, an SR's own
    filesystem, an admin's zvol). One `zfs get` of the SR and the dataset together, as
    Volume.stat makes: this is the VM start path."""
    from zfsaga.plugin.context import open_sr
    from zfsaga.plugin.errors import SrNotAttached
    from zfsaga.plugin.volumes import listed, rank
    from zfsaga.steps import meta
    from zfsaga.steps.zfs import names

    name = target(uri) if domain is None else _teardown_checks(uri, domain)
    missing = VolumeDoesNotExist(f"{uri} is not a volume of a zfsaga SR")
    sr = names.parent_of(names.dataset_of(name))
    if not sr:
        raise missing
    try:
        s = open_sr(sr, name[len(sr) + 1:])
    except (SrNotAttached, InvalidArgument):
        raise missing from None
    found = s.seen.get(name)
    if found is None:
        if "@" in name and s.metadata_only(name[len(sr) + 1:]):
            raise InvalidArgument(f"{uri}: a metadata-only VDI (its data was destroyed by "
                                  f"Volume.data_destroy, for changed block tracking): there "
                                  f"is nothing to attach")
        raise missing
    native, user = found
    # A volume at its home only (a retired head's name is no URI of ours); a snapshot at
    # home or on the head a revert left it on (rank 1), never on a revert's unswapped clone.
    if not listed(name, native, user) \
            or rank(sr, name, user[meta.KEY]) not in ((0, 1) if "@" in name else (0,)):
        raise missing
    return name


def zvol_name(device: str) -> str | None:
    """The dataset a zvol device belongs to, asked of the device itself (BLKZNAME)."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = fcntl.ioctl(fd, BLKZNAME, b"\0" * 256)
    except OSError:
        return None
    finally:
        os.close(fd)
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def device(name: str, wait: float | None = None) -> str:
    """The block device of the zvol `name`, once udev made its link and the device says it is
    that zvol's; Busy after `wait` seconds, saying what it waited for."""
    link = PREFIX + name
    wait = device_wait() if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        if os.path.exists(link):
            real = os.path.realpath(link)
            if zvol_name(real) == name:
                return real
        if time.monotonic() > deadline:
            seen = os.path.realpath(link) if os.path.exists(link) else "no link"
            raise Busy(f"waited {wait:.0f}s for {link} to lead to {name}'s own device "
                       f"(found: {seen})")
        subprocess.run(["udevadm", "settle", "--timeout=2"], capture_output=True, check=False)
        time.sleep(0.1)


def attach(dbg: str, uri: str, domain: str) -> dict:
    """The zvol's own device (a snapshot's is read-only: its SR sets snapdev=visible), and
    what blkback should know of it in XenDisk's extras."""
    name = vdi(uri, domain)
    dev = device(name)
    return {"implementations": [
        ["XenDisk", {"params": dev, "extra": disk_extras(name, dev), "backend_type": "vbd"}],
        ["BlockDevice", {"path": dev}]]}


def disk_extras(name: str, dev: str) -> dict[str, str]:
    """Discard on for a thin volume (freed blocks return to the pool) with the volume block
    size as its granularity, off for a thick one and a snapshot (nothing to give back); the
    device's real logical and physical sector sizes, read from sysfs."""
    from zfsaga.plugin.context import zfs

    got = zfs().get_props(name, ["volblocksize", "refreservation"])
    thin = "@" not in name and got["refreservation"].value in (None, "0")
    extras = {"discard-enable": "1" if thin else "0",
              "discard-granularity": str(got["volblocksize"].value or 0)}
    queue = Path("/sys/block") / os.path.basename(dev) / "queue"
    for key, source in (("sector-size", "logical_block_size"),
                        ("physical-sector-size", "physical_block_size")):
        try:
            extras[key] = (queue / source).read_text().strip()
        except OSError:
            pass  # no sysfs for it (a test's stand-in device): say nothing rather than guess
    return extras


def detach(dbg: str, uri: str, domain: str) -> None:
    """Nothing was set up by attach beyond what udev keeps. A teardown verb: it answers
    success for a volume that is gone by now (xapi unplugs after a destroy, an SR detach, a
    crash), so only the URI's form is checked."""
    _teardown_checks(uri, domain)
    return None


def _teardown_checks(uri: str, domain: str) -> str:
    """What every datapath verb checks of its arguments alone: a domain, and a URI of ours
    (the dataset it names)."""
    if not domain:
        raise InvalidArgument("the domain is empty: it names no VM (or dom0)")
    return target(uri)


@contextmanager
def _record(uri: str, domain: str, teardown: bool = False) -> Iterator[dict]:
    """This host's activation record of one volume, under an exclusive flock. The volume is
    checked to be a VDI first, unless `teardown` (deactivate: a record must be dropped even
    when its volume has gone since)."""
    name = _teardown_checks(uri, domain) if teardown else vdi(uri, domain)
    run = Path(os.environ.get("ZFSAGA_RUN_DIR", "/run/zfsaga")) / "active"
    run.mkdir(parents=True, exist_ok=True)
    path = run / (hashlib.sha256(name.encode()).hexdigest()[:24] + ".json")
    try:  # a teardown makes no record: there is nothing to drop where there is none
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (0 if teardown else os.O_CREAT), 0o600)
    except FileNotFoundError:
        yield {"rw": None, "ro": []}
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.read(fd, 1 << 16).decode() or "{}"
        state = {"rw": None, "ro": [], **json.loads(text)}
        before = dict(state)
        yield state
        if state != before:
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(state).encode())
    finally:
        os.close(fd)


def activate(dbg: str, uri: str, domain: str) -> None:
    with _record(uri, domain) as state:
        others = [d for d in state["ro"] if d != domain]
        if state["rw"] not in (None, domain) or others:
            holder = state["rw"] if state["rw"] is not None else others[0]
            raise ActivatedElsewhere(f"{target(uri)} is active for domain {holder} on this "
                                     f"host: deactivate it there first")
        state["rw"] = domain
    return None


def activate_readonly(dbg: str, uri: str, domain: str) -> None:
    with _record(uri, domain) as state:
        if state["rw"] not in (None, domain):
            raise ActivatedElsewhere(f"{target(uri)} is active read-write for domain "
                                     f"{state['rw']} on this host")
        if domain not in state["ro"]:
            state["ro"] = [*state["ro"], domain]
    return None


def deactivate(dbg: str, uri: str, domain: str) -> None:
    with _record(uri, domain, teardown=True) as state:
        if state["rw"] == domain:
            state["rw"] = None
        state["ro"] = [d for d in state["ro"] if d != domain]
    return None


def query(dbg: str) -> dict:
    from zfsaga.plugin.query import VERSION

    return {"plugin": SCHEME, "name": "zfsaga datapath: a zvol's own block device",
            "description": "hands blkback the zvol's device, checked to be the volume's",
            "vendor": "zfsaga", "copyright": "zfsaga authors", "version": VERSION,
            "required_api_version": "5.0", "features": [], "configuration": {},
            "required_cluster_stack": []}
