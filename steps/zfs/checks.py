"""The ZFS layer's argument checks: what ZFS would refuse or misparse, refused before any
backend sees it (names are `names.py`'s; here, values, sizes, properties, pool layouts), and
the facts about ZFS they rest on. Which of these an SR offers an admin is policy, and lives
above the layer (steps/srs.py: TUNABLE, POOL_LAYOUTS)."""
from __future__ import annotations

from zfsaga.steps.zfs import names
from zfsaga.steps.zfs.errors import InvalidName, InvalidValue

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Iterable

#: Native properties the layer reads. Space accounting (used, available, referenced) is real on
#: the real backend; the model does not simulate it and answers None.
NATIVE_PROPS = ("type", "guid", "createtxg", "creation", "origin", "volsize",
                "volblocksize", "refreservation", "defer_destroy", "userrefs", "snapdev",
                "mountpoint", "mounted", "used", "available", "referenced", "compression", "sync", "logbias",
                "primarycache")
#: The inheritable native properties of enumerated values the layer may set, each with the
#: values it takes (OpenZFS 2.1's, less the deprecated and the exotic).
NATIVE_VALUES = {
    "compression": ("on", "off", "lz4", "zstd", "zle", "lzjb", "gzip",
                    *(f"gzip-{n}" for n in range(1, 10)), *(f"zstd-{n}" for n in range(1, 20))),
    "sync": ("standard", "always", "disabled"),
    "logbias": ("latency", "throughput"),
    "primarycache": ("all", "none", "metadata"),
}
#: Native properties the layer may set (user properties, "module:name", are always allowed).
#: refreservation is only ever set to 0 this way (a retired volume releases its space);
#: a thick volume's own is set at creation or by `reserve`.
SETTABLE_NATIVE = ("volsize", "snapdev", "refreservation", *NATIVE_VALUES)
#: A new pool's vdev layouts (one vdev of the pool), each with the fewest devices ZFS takes
#: for it; "stripe" is plain devices side by side.
VDEV_LAYOUTS = {"stripe": 1, "mirror": 2, "raidz1": 2, "raidz2": 3, "raidz3": 4}
DEFAULT_VOLBLOCKSIZE = 8192  # OpenZFS 2.1; 2.2 moved to 16K
MAX_VOLSIZE = 2**63 - 1
#: ZFS's limit for a user property value (ZAP_MAXVALUELEN in bytes, 8192 in OpenZFS 2.1).
MAX_USER_VALUE = 8191


def is_user_prop(prop: str) -> bool:
    """User properties are 'module:name' in lowercase ZFS syntax."""
    return ":" in prop and names._COMPONENT.fullmatch(prop) is not None and prop == prop.lower()


def check_props(props: dict[str, str] | None, *, native_ok: bool = False) -> dict[str, str]:
    """Validate a property dict before it reaches ZFS."""
    out: dict[str, str] = {}
    for key, value in (props or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidValue(repr(key), "property names and values are strings")
        if not (is_user_prop(key) or (native_ok and key in SETTABLE_NATIVE)):
            raise InvalidValue(key, "not a user property (module:name) the layer may set")
        if len(key) > 255 or len(value.encode()) > MAX_USER_VALUE or "\n" in value \
                or "\t" in value:
            raise InvalidValue(key, "property name or value too long or has a tab/newline")
        out[key] = value
    return out


def check_settable(props: dict[str, str]) -> dict[str, str]:
    """`check_props` for a set on an existing object: natives allowed, a reservation only
    released (a thick volume's own is set at creation or by `reserve`), a volsize a size."""
    p = check_props(props, native_ok=True)
    if p.get("refreservation", "0") != "0":
        raise InvalidValue(p["refreservation"], "a reservation is set only to 0 here (a "
                                                "thick volume's own: create or reserve)")
    if "volsize" in p:
        if not p["volsize"].isdigit():
            raise InvalidValue(p["volsize"], "volsize must be a number of bytes")
        check_size(int(p["volsize"]))
    return p


def check_size(size: int, blocksize: int = 1) -> int:
    """Sizes are positive ints, within ZFS's range, and multiples of the block size."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size > MAX_VOLSIZE:
        raise InvalidValue(str(size), "size must be a positive integer number of bytes")
    if size % blocksize:
        raise InvalidValue(str(size), f"volume size must be a multiple of volblocksize {blocksize}")
    return size


def check_volblocksize(volblocksize: int | None) -> int:
    """The block size a new zvol gets: a power of two from 512 to 128K (ZFS's default when
    none is given)."""
    bs = volblocksize or DEFAULT_VOLBLOCKSIZE
    if bs < 512 or bs > 131072 or bs & (bs - 1):
        raise InvalidValue(str(bs), "volblocksize must be a power of two, 512 to 128K")
    return bs


def check_snapshots(snaps: Iterable[str]) -> list[str]:
    """Snapshots to take together: at least one, well named, at most one per dataset."""
    out = [names.check_snapshot(s) for s in snaps]
    if not out:
        raise InvalidValue("snapshot", "no snapshot named")
    if len({names.dataset_of(s) for s in out}) != len(out):
        raise InvalidName(out[0], "two snapshots of one dataset in one call")
    return out


def check_rename(old: str, new: str) -> None:
    names.check_dataset(old)
    names.check_dataset(new)
    if new.startswith(old + "/"):
        raise InvalidName(new, "cannot rename a dataset below itself")


def check_pool(pool: str, devices: list[str], layout: str, ashift: int | None) -> list[str]:
    """A new pool's name, devices (checked, returned) and layout; ashift 9 to 16 if given."""
    names.check_pool(pool)
    devs = [names.check_device(d) for d in devices]
    if layout not in VDEV_LAYOUTS:
        raise InvalidValue(layout, f"a layout is one of {', '.join(VDEV_LAYOUTS)}")
    if len(devs) < VDEV_LAYOUTS[layout] or len(set(devs)) != len(devs):
        raise InvalidValue(layout, f"{layout} takes at least {VDEV_LAYOUTS[layout]} "
                                   f"distinct device(s), not {len(devs)}")
    if ashift is not None and not 9 <= ashift <= 16:
        raise InvalidValue(str(ashift), "ashift is 9 to 16")
    return devs


def check_pool_guid(pool_guid: str) -> str:
    if not str(pool_guid).isdigit():
        raise InvalidValue(str(pool_guid), "a pool guid is a decimal number")
    return str(pool_guid)


def check_inheritable(prop: str) -> None:
    """A property `inherit` may reset: a user property, or a settable native but volsize."""
    check_props({prop: ""}, native_ok=True)
    if prop == "volsize":
        raise InvalidValue(prop, "volsize cannot be inherited")


def check_readable(props: Iterable[str]) -> list[str]:
    """Properties to read: at least one, each native the layer reads or a user property."""
    wanted = list(props)
    for p in wanted:
        if p not in NATIVE_PROPS and not is_user_prop(p):
            raise InvalidValue(p, "not a property the layer reads")
    if not wanted:
        raise InvalidValue("props", "no property asked for")
    return wanted
