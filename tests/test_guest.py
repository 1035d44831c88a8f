"""The guest harness's failure paths: each is a clear error and exit status 96, never a
skipped test or a silent pass."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zfsaga.guest import run as guest


def test_no_kernel_with_zfs_is_a_clear_error(tmp_path: Path) -> None:
    modules, boot = tmp_path / "modules", tmp_path / "boot"
    (modules / "6.1.0-9-amd64" / "kernel").mkdir(parents=True)  # a kernel without zfs.ko
    boot.mkdir()
    (boot / "vmlinuz-6.1.0-9-amd64").write_bytes(b"")
    with pytest.raises(guest.GuestError, match="no Debian kernel with a built zfs.ko"):
        guest.debian_kernel(str(modules), str(boot))
    (modules / "6.1.0-9-amd64" / "extra").mkdir()
    (modules / "6.1.0-9-amd64" / "extra" / "zfs.ko.xz").write_bytes(b"")
    assert guest.debian_kernel(str(modules), str(boot)) == "6.1.0-9-amd64"


def test_missing_qemu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("ZFSAGA_DIRECT_POOL", raising=False)
    assert guest.main(["--", "true"]) == 96
    assert "qemu-system-x86_64 is not installed" in capsys.readouterr().err


@pytest.mark.guestboot
def test_a_module_that_does_not_load_fails_the_run(monkeypatch: pytest.MonkeyPatch,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is missing: run make setup")
    monkeypatch.setenv("ZFSAGA_GUEST_MODULE", "zfs_no_such_module")
    assert guest.main(["--timeout", "300", "--", "true"]) == 96
    err = capfd.readouterr().err
    assert "guest set-up failed" in err and "modprobe zfs_no_such_module" in err
