# zfsaga's SMAPIv3 entry point: xapi-storage-script runs it under each verb's name
# (`SR.attach --json`, `Plugin.Query --json`, ...), through symlinks that `make install` lays.
#
# This one file must parse on Python 3.6: with SMAPI tracing on, xapi-storage-script runs a
# plugin as `/usr/bin/python3 -m observer <script>`, whatever its shebang, and XCP-ng 8.3's dom0
# has 3.6. So: no annotations, no f-strings with `=`, nothing newer. On a Python older than
# zfsaga needs, it answers with the error JSON, which names the version it needs.
import json
import os
import sys

REQUIRED = (3, 11)


def _too_old():
    found = ".".join(str(part) for part in sys.version_info[:3])
    message = ("zfsaga needs Python %d.%d or newer; this is Python %s (%s)"
               % (REQUIRED[0], REQUIRED[1], found, sys.executable))
    sys.stdout.write(json.dumps({
        "code": "SR_BACKEND_FAILURE", "params": ["Unimplemented", message],
        "backtrace": {"error": "Unimplemented: " + message, "files": [], "lines": []}}) + "\n")
    sys.stdout.flush()
    return 1


def _run():
    if tuple(sys.version_info[:2]) < REQUIRED:
        return _too_old()
    # <prefix>/libexec/xapi-storage-script/{volume,datapath}/<dir>/<this> -> <prefix>/lib/zfsaga
    here = os.path.dirname(os.path.realpath(__file__))
    prefix = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(here))))
    library = os.environ.get("ZFSAGA_LIBRARY") or os.path.join(prefix, "lib", "zfsaga")
    sys.path.insert(0, library)
    from zfsaga.plugin.dispatch import main
    return main(os.path.basename(sys.argv[0]), sys.argv[1:],
                where=os.path.dirname(os.path.abspath(sys.argv[0])))


if __name__ == "__main__":
    sys.exit(_run())
