"""The installed entry point's own start (issue 20: at most 1.2x `python3 -c pass`): it runs as
`python3 -S`, so the interpreter skips `site` (about a third of a bare start) on the served
path, where the relay needs nothing of it; a call it runs in-process (no server) runs `site`
itself, since pyzfs lives in the system's site-packages. Seen through a user site whose .pth
file records each time `site` ran in the client."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from zfsaga.plugin.dispatch import PLUGIN_TYPE

PYTHON = "/usr/bin/python3"
VOLUME = "usr/libexec/xapi-storage-script/volume"


def _user_site(base: Path) -> Path:
    """Where `site` looks for .pth files under PYTHONUSERBASE=base, for the host's python3."""
    out = subprocess.run([PYTHON, "-c", "import site; print(site.getusersitepackages())"],
                         capture_output=True, text=True, env={"PYTHONUSERBASE": str(base)},
                         check=True)
    return Path(out.stdout.strip())


def test_the_served_path_skips_site_and_the_in_process_call_runs_it(destdir: Path,
                                                                    tmp_path: Path) -> None:
    plugin = destdir / VOLUME / f"org.xen.xapi.storage.{PLUGIN_TYPE}"
    assert (plugin / "zfsaga-entry").read_text().splitlines()[0] == f"#!{PYTHON} -S"
    mark = tmp_path / "site-ran"
    user = _user_site(tmp_path / "client")
    user.mkdir(parents=True)
    (user / "mark.pth").write_text(
        "import os; open(os.environ['ZFSAGA_TEST_MARK'], 'a').write('site\\n')\n")
    sock = tmp_path / "run" / "server.sock"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ZFSAGA_SYSLOG": "0",
           "ZFSAGA_RUN_DIR": str(sock.parent), "ZFSAGA_SOCKET": str(sock),
           "ZFSAGA_STATE_DIR": str(tmp_path / "state"),
           "PYTHONUSERBASE": str(tmp_path / "client"), "ZFSAGA_TEST_MARK": str(mark)}

    def query(**extra: str) -> None:
        out = subprocess.run([str(plugin / "Plugin.Query"), "--json"], input='{"dbg": "t"}',
                             capture_output=True, text=True, env={**env, **extra}, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert '"plugin": "zfsaga"' in out.stdout

    query(ZFSAGA_SERVER="0")  # in-process: site ran, once, in the call itself
    assert mark.read_text() == "site\n"
    mark.unlink()
    elsewhere = {**env, "PYTHONUSERBASE": str(tmp_path)}  # the server and its status: no mark
    server = subprocess.Popen([PYTHON, str(destdir / "usr/sbin/zfsaga"), "serve", "--socket",
                               str(sock)], env=elsewhere,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        status = [PYTHON, str(destdir / "usr/sbin/zfsaga"), "server", "status"]
        until = time.monotonic() + 60
        while subprocess.run(status, env=elsewhere, capture_output=True).returncode != 0:
            assert time.monotonic() < until and server.poll() is None, "no server"
            time.sleep(0.2)
        query()  # served: the client never ran site (the server's child is a fork)
        assert not mark.exists()
        assert not (sock.parent / "fallback").exists()  # and it was served, not run here
    finally:
        server.terminate()
        server.wait(30)

