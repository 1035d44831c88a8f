"""Plugin.query and Plugin.diagnostics: what zfsaga is, and what it can tell an admin about the
host it runs on. Read-only; they touch no journal and take no lock."""
from __future__ import annotations

import os

from zfsaga.plugin.verbs import IMPLEMENTATIONS, PLUGIN_TYPE
from zfsaga.plugin.sr import CONFIGURATION  # the keys SR.create takes, in words

VERSION = "0.1.0"
#: Declared features. xapi adds SR_*/VDI_* itself for each verb script that exists
#: (xapi-storage-script); VDI_REVERT is never derived and must be declared once Volume.revert is installed.
DECLARED: list[str] = []


def query(dbg: str) -> dict:
    features = list(DECLARED)
    if "Volume.revert" in IMPLEMENTATIONS:
        features.append("VDI_REVERT")
    if "Volume.enable_cbt" in IMPLEMENTATIONS:  # never derived by xapi either
        features.append("VDI_CONFIG_CBT")
    return {"plugin": PLUGIN_TYPE, "name": "zfsaga: ZFS volumes, every change a saga",
            "description": "VDIs as ZFS volumes on a pool or dataset; every change runs as a "
                           "journaled saga that is resumed or undone after a crash",
            "vendor": "zfsaga", "copyright": "zfsaga authors", "version": VERSION,
            "required_api_version": "5.0", "features": features,
            "configuration": dict(CONFIGURATION), "required_cluster_stack": []}



def diagnostics(dbg: str) -> str:
    """A short report for `xe host-call-plugin`-style triage: versions and whether ZFS is
    reachable. Bounded: the one zfs command it may run has a timeout."""
    import platform  # here, not at the top: Plugin.query runs often and needs none of them
    import shutil
    import subprocess

    import zfsaga

    lines = [f"zfsaga {VERSION} on Python {platform.python_version()} "
             f"({os.path.realpath(os.sys.executable)}), loaded from "
             f"{os.path.dirname(os.path.dirname(os.path.realpath(zfsaga.__file__)))}",
             f"verbs: {', '.join(sorted(IMPLEMENTATIONS))}"]
    if not os.path.exists("/dev/zfs"):
        lines.append("ZFS: /dev/zfs is missing (the zfs kernel module is not loaded)")
    else:
        zfs = shutil.which("zfs") or "/sbin/zfs"
        try:
            out = subprocess.run([zfs, "version"], capture_output=True, text=True, timeout=10)
            lines.append("ZFS: " + " ".join(out.stdout.split()) if out.returncode == 0
                         else f"ZFS: `zfs version` failed: {out.stderr.strip()}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            lines.append(f"ZFS: `zfs version` could not run: {exc}")
    return "\n".join(lines)
