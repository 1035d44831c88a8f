"""SR.create's configuration, in words and checked: the keys it takes (Plugin.query shows them
to admins), and each value checked before anything is read or made, for an SR on an existing
dataset (plugin/sr.py) and on a pool zfsaga makes (plugin/pools.py) alike."""
from __future__ import annotations

from zfsaga.plugin.errors import InvalidArgument
from zfsaga.steps import meta

#: SR.create's configuration keys (Plugin.query shows these words to admins).
CONFIGURATION = {
    "dataset": "the existing pool or ZFS filesystem that holds the SR's volumes (this or "
               "devices); it must not lie inside another zfsaga SR nor contain one. zfsaga "
               "never exports nor destroys it",
    "devices": "instead of dataset: the block devices of a new pool zfsaga makes for this SR, "
               "comma-separated absolute paths (/dev/disk/by-id/... names survive reboots). "
               "Never forced: a device holding a filesystem or a pool is refused. The pool is "
               "exported on detach (while it holds nothing else), imported on attach, and "
               "destroyed with the SR",
    "pool": "with devices: the new pool's name (default zfsaga-<the SR uuid's first 8 "
            "characters>)",
    "layout": "with devices: the new pool's redundancy, mirror, raidz1, raidz2, raidz3 or "
              "stripe. One device is a stripe; several need it said (a stripe of several "
              "loses everything with any one of them)",
    "ashift": "with devices: the new pool's sector size as a power of two, 9 to 16 (12 for "
              "4K-sector disks; default: what ZFS reads from the devices)",
    "provisioning": "thin (default: volumes reserve nothing, the pool's free space is shared "
                    "and can be overcommitted) or thick (each volume reserves its whole size)",
    "compression": "ZFS compression of every volume: on, off, lz4, zstd, zstd-1..19, gzip, "
                   "gzip-1..9, zle or lzjb (default: inherited from the pool)",
    "sync": "standard, always or disabled (default: inherited; disabled loses the last "
            "seconds of guest writes on a power cut)",
    "logbias": "latency or throughput (default: inherited)",
    "primarycache": "all, metadata or none: what the ARC caches of volumes (default: inherited)",
    "volblocksize": "block size of new volumes in bytes (or with K), a power of two from the "
                    "pool's sector size (2^ashift; 4K when ashift is unset) to 128K; default "
                    "ZFS's 8K. Volume sizes round up to it",
}
#: An unset pool ashift: ZFS picks each vdev's from its devices; 4K sectors are the norm, so
#: a volume block must be at least that (a smaller one would be padded to it anyway).
ASSUMED_ASHIFT = 12

def checked_strings(uuid: str, name: str, description: str) -> None:
    """SR.create's strings, before anything is read or made: the uuid canonical (it is stored
    and compared as it is), the name and description storable (meta.encode's rules)."""
    from zfsaga.steps.zfs.errors import InvalidValue

    try:
        meta.check_sr_uuid(uuid)
        meta.encode(name)
        meta.encode(description)
    except InvalidValue as exc:
        raise InvalidArgument(f"SR.create: {exc}") from None


def checked_provisioning(configuration: dict) -> str:
    provisioning = configuration.get("provisioning", "thin")
    if provisioning not in ("thin", "thick"):
        raise InvalidArgument(f"SR.create: provisioning is thin or thick, not {provisioning!r}")
    return provisioning


def checked_tuning(backend, dataset: str, configuration: dict,
                   ashift: int | None = None) -> dict[str, str]:
    """The admin's per-SR ZFS tuning, checked before anything is recorded: the native
    properties every volume inherits, and the volume block size (a user property). `ashift`:
    the pool's, when it is not made yet."""
    from zfsaga.steps.zfs.errors import ZfsError
    from zfsaga.steps.srs import TUNABLE

    out = {}
    for key, allowed in TUNABLE.items():
        if key in configuration:
            if configuration[key] not in allowed:
                raise InvalidArgument(f"SR.create: {key} is one of {', '.join(allowed)}; "
                                      f"not {configuration[key]!r}")
            out[key] = configuration[key]
    if "volblocksize" in configuration:
        text = str(configuration["volblocksize"]).strip().upper()
        scale = 1024 if text.endswith("K") else 1
        digits = text[:-1] if scale > 1 else text
        size = int(digits) * scale if digits.isdigit() else 0
        if size < 512 or size > 131072 or size & (size - 1):
            raise InvalidArgument(f"SR.create: volblocksize is a power of two from 512 to 128K, "
                                  f"not {configuration['volblocksize']!r}")
        try:
            ashift = ashift or backend.pool_ashift(dataset.split("/")[0]) or ASSUMED_ASHIFT
        except ZfsError as exc:
            raise InvalidArgument(f"SR.create: cannot read the pool's ashift: {exc}") from None
        if size < 1 << ashift:
            raise InvalidArgument(f"SR.create: volblocksize {size} is below the pool's sector "
                                  f"size {1 << ashift} (ashift {ashift}): ZFS would pad each "
                                  f"block to it, wasting space")
        out[meta.VOLBLOCKSIZE] = str(size)
    return out
