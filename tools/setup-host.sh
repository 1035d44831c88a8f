#!/usr/bin/env bash
# Installs what zfsaga needs on a Debian 12 host, idempotently: Debian contrib, OpenZFS (dkms,
# built for the installed Debian kernel so the QEMU guest can load it), pyzfs, QEMU, and the
# project's virtual environment on the system python (so pyzfs is importable).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(linux-image-amd64 linux-headers-amd64 udev zfs-dkms zfsutils-linux python3-pyzfs
          qemu-system-x86 python3-venv python3-pip dmsetup)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=0
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt=1
done

if [ "$need_apt" = 1 ]; then
  # ZFS lives in contrib, which Debian does not enable by default.
  if ! grep -rqs "contrib" /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; then
    $SUDO tee /etc/apt/sources.list.d/zfsaga-contrib.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  echo "setup: apt-get install ${APT_PKGS[*]} (dkms builds zfs.ko: a few minutes)" >&2
  $SUDO apt-get update -qq
  # zfs-dkms asks about its licence through debconf; noninteractive takes the default.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_PKGS[@]}" >/dev/null
fi

# The guest boots the host's root over virtio-9p: its initramfs needs the 9p and virtio modules.
KVER=$(ls /lib/modules | sort -V | while read -r v; do [ -e "/boot/vmlinuz-$v" ] && echo "$v"; done | tail -n 1)
if [ -z "$KVER" ]; then echo "setup: no Debian kernel under /boot" >&2; exit 1; fi
if ! find "/lib/modules/$KVER" -name 'zfs.ko*' | grep -q .; then
  echo "setup: zfs.ko was not built for $KVER (dkms)" >&2; exit 1
fi
MODS=(9p 9pnet_virtio virtio_pci virtio_blk overlay)
changed=0
for m in "${MODS[@]}"; do
  grep -qx "$m" /etc/initramfs-tools/modules || { echo "$m" | $SUDO tee -a /etc/initramfs-tools/modules >/dev/null; changed=1; }
done
stamp="/boot/.zfsaga-initrd-$KVER"
if [ "$changed" = 1 ] || [ ! -e "$stamp" ] || [ "/boot/initrd.img-$KVER" -nt "$stamp" ]; then
  echo "setup: update-initramfs for $KVER" >&2
  $SUDO update-initramfs -u -k "$KVER" >/dev/null
  $SUDO touch "$stamp"
fi

# The virtual environment: system python with system site-packages, so Debian's pyzfs imports.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.base_prefix != "/usr")'; then
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if [ ! -e .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  touch .venv/.installed
fi
echo "setup: ready (kernel $KVER, $(.venv/bin/python --version))" >&2
