#!/bin/sh
# The real-ZFS tier, run inside the guest by `make test` (python -m zfsaga.guest -- sh tests/guest-tier.sh):
# every test marked realzfs, against the guest's pool. pyzfs's own shipped suite (about 12
# minutes in the emulated guest) proved the guest once and now runs only when asked:
# `make pyzfs-suite`, or ZFSAGA_PYZFS_SUITE=1 here.
set -u
status=0
if [ "${ZFSAGA_PYZFS_SUITE:-0}" = 1 ]; then
  echo "== pyzfs shipped suite (libzfs_core/test) =="
  # Its temporary pools are file vdevs under /tmp (the guest binds it so the kernel sees them).
  (cd /tmp && /usr/bin/python3 -m unittest \
      libzfs_core.test.test_libzfs_core libzfs_core.test.test_nvlist > /tmp/pyzfs.log 2>&1)
  rc=$?
  tail -n 25 /tmp/pyzfs.log
  [ $rc -eq 0 ] || { echo "pyzfs shipped suite FAILED (exit $rc)"; status=1; }
fi
echo "== zfsaga real-ZFS tier =="
.venv/bin/python -m pytest -m realzfs -p no:cacheprovider -q -ra --durations=12 "$@" || status=1
exit $status
