#!/bin/sh
# PID 1 of the real-ZFS guest. The guest's root is the host's root over 9p, read-only; this
# script makes a writable overlay on tmpfs, chroots into it, loads zfs, starts udev, creates a
# pool on /dev/vda and runs /run/out/cmd.sh. Results go back through the `out` 9p share:
# log (the command's output), rc (its exit status), boot.log (this script's own steps).
# An init that exits panics the kernel, so every path ends in an explicit power-off.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

stage=${1:-outer}
if [ "$stage" = outer ]; then
  mount -t proc proc /proc
  mount -t sysfs sys /sys
  mount -t devtmpfs dev /dev
  mount -t tmpfs tmpfs /run
  mkdir -p /run/out /run/ov/upper /run/ov/work /run/ov/root /run/hosttmp
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /run/out
  exec >>/run/out/boot.log 2>&1
  echo "guest: kernel $(uname -r), overlay root"
  . /run/out/env.sh
  # A fresh, writable /tmp; a work directory under the host's /tmp (a CI clone) stays visible
  # there, writable through an overlay of its own.
  mount --bind /tmp /run/hosttmp
  mount -t tmpfs tmpfs /tmp
  case "$ZFSAGA_WORKDIR" in
    /tmp/*)
      rel=${ZFSAGA_WORKDIR#/tmp/}; top=${rel%%/*}
      mkdir -p "/tmp/$top" /run/ov/wd-upper /run/ov/wd-work
      mount -t overlay overlay -o "lowerdir=/run/hosttmp/$top,upperdir=/run/ov/wd-upper,workdir=/run/ov/wd-work" "/tmp/$top"
      ;;
  esac
  mount -t overlay overlay -o lowerdir=/,upperdir=/run/ov/upper,workdir=/run/ov/work /run/ov/root
  R=/run/ov/root
  mount --rbind /proc $R/proc
  mount --rbind /sys $R/sys
  mount --rbind /dev $R/dev
  mount -t tmpfs tmpfs $R/run
  # /tmp is the outer one, so a path under it means the same file to the chroot and to the
  # kernel's own threads (which resolve file vdevs against the outer root).
  mount --rbind /tmp $R/tmp
  mkdir -p $R/run/out
  mount --bind /run/out $R/run/out
  chroot $R /bin/sh "$0" inner
  sync
  echo o > /proc/sysrq-trigger
  sleep 30
  exit 0
fi

# inner stage, inside the writable chroot
fail() { echo "guest: FAILED: $*"; echo 97 > /run/out/rc; sync; exit 1; }
. /run/out/env.sh
# ZFSAGA_GUEST_MODULE exists for the harness's own test of a missing module.
module=${ZFSAGA_GUEST_MODULE:-zfs}
modprobe "$module" || fail "modprobe $module (is zfs-dkms built for $(uname -r)?)"
/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 || fail "udevd"
udevadm trigger >/dev/null 2>&1
udevadm settle --timeout=30
zpool create -f -o cachefile=none "$ZFSAGA_TEST_POOL" /dev/vda || fail "zpool create"
echo "guest: pool $ZFSAGA_TEST_POOL ready"
{
  echo "== zfs version (guest) =="
  zfs version
  cd "$ZFSAGA_WORKDIR" || exit 98
  sh /run/out/cmd.sh
} > /run/out/log 2>&1
echo $? > /run/out/rc
sync
zpool export "$ZFSAGA_TEST_POOL" >/dev/null 2>&1
echo "guest: done"
