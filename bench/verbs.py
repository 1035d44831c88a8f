"""Benchmark: each SMAPIv3 verb as xapi-storage-script runs it (a process, JSON in and out,
through the installed scripts), three ways in the same run on real ZFS (in the guest: `make
bench`): through the warm server (plugin/server.py, started the socket-activated way:
systemd-socket-activate on the installed zfsaga.service's ExecStart=, on a socket of its own),
in-process (ZFSAGA_SERVER=0: the fallback), and the zfs/zpool commands a shell driver such as
XCP-ng's zfs-vol runs for the same work. Plus, for each mutating verb, the same ZFS calls made
back to back through the layer in this one warm process (no saga, no journal), the saga itself
in this warm process (no interpreter, no relay, no fork), and how many ZFS sync tasks (the
layer's mutating calls, counted by its hooks) the saga makes against the shell's commands.
Reads are measured both ways through the server: through channel programs in the server's
child (the default where pyzfs is loaded: plugin/context.py reads_in_process) and through a
`zfs` process (ZFSAGA_READS=cli). Figures, not pass/fail: each row says which target it meets.

Usage: bench/verbs.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POOL = os.environ.get("ZFSAGA_TEST_POOL", "zfsagatest")
READ_ONLY = {"Volume.stat", "SR.ls", "SR.stat", "Plugin.Query", "Datapath.attach",
             "Datapath.activate", "Datapath.deactivate", "Datapath.detach"}
VOLUME_DIR = "usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.zfsaga"
DATAPATH_DIR = "usr/libexec/xapi-storage-script/datapath/zfsaga"
PASS = ["/usr/bin/python3", "-c", "pass"]
#: The least a shell driver's verb costs when it runs no zfs command: its own process.
NOTHING = ["/bin/sh", "-c", ":"]


def run(argv: list[str], stdin: str = "", env: dict | None = None) -> str:
    out = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"bench: {argv[0]} failed: {out.stdout}{out.stderr}")
    return out.stdout


def timed(fn, repeat: int) -> float:
    """The median of `repeat` runs of fn, in ms."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


class Counting:
    """ZfsHooks that count and time the layer's calls: a mutating call is one ZFS sync task
    (one transaction group waited for); a read is a channel program or a `zfs` process."""

    def __init__(self) -> None:
        self.calls = self.mutations = 0
        self.ops: list[str] = []
        self.spent = {True: 0.0, False: 0.0}  # seconds in mutations, in reads
        self._since = 0.0

    def before(self, op: str, name: str, mutating: bool) -> None:
        self.calls += 1
        if mutating:
            self.mutations += 1
            self.ops.append(op)
        self._since = time.perf_counter()

    def after(self, op: str, name: str, mutating: bool) -> None:
        self.spent[mutating] += time.perf_counter() - self._since

    def failed(self, op: str, name: str, mutating: bool, error: Exception) -> None:
        self.after(op, name, mutating)


class JournalClock:
    """The journal's commits (and checkpoints), counted and timed in this process."""

    def __init__(self) -> None:
        from zfsaga.state.journal import Journal

        self.count = 0
        self.spent = 0.0
        for method in ("_commit", "checkpoint"):
            setattr(Journal, method, self._timed(getattr(Journal, method)))

    def _timed(self, fn):
        def timed_call(journal, *a, **kw):
            start = time.perf_counter()
            try:
                return fn(journal, *a, **kw)
            finally:
                self.count += 1
                self.spent += time.perf_counter() - start
        return timed_call


def start_server(tmp: str, env: dict) -> subprocess.Popen:
    """The warm server as systemd starts it: the installed unit's ExecStart= under
    systemd-socket-activate, listening where ZFSAGA_SOCKET says; back once it answers."""
    unit = Path(tmp, "usr/lib/systemd/system/zfsaga.service").read_text()
    exec_start = next(line.split("=", 1)[1].split() for line in unit.splitlines()
                      if line.startswith("ExecStart="))
    sock = env["ZFSAGA_SOCKET"]
    os.makedirs(os.path.dirname(sock), mode=0o700, exist_ok=True)
    server = subprocess.Popen(["systemd-socket-activate", "-l", sock,
                               *(f"--setenv={k}={v}" for k, v in env.items()), *exec_start],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = [exec_start[0], "server", "status", "--socket", sock]
    until = time.monotonic() + 600
    while time.monotonic() < until:
        time.sleep(0.5)
        if subprocess.run(status, capture_output=True, env=env).returncode == 0:
            return server
    server.kill()
    raise SystemExit("bench: the server did not answer within 600 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not os.path.exists("/dev/zfs"):
        print("verbs: skipped (no /dev/zfs here; `make bench` runs this in the guest)")
        return 0
    repeat = args.repeat
    root = f"{POOL}/vb{uuid.uuid4().hex[:6]}"
    shell = f"{root}/shell"
    run(["zfs", "create", "-p", f"{root}/sr"])
    run(["zfs", "create", shell])
    run(["zfs", "create", f"{root}/layer"])
    with tempfile.TemporaryDirectory() as tmp:
        run([sys.executable, str(ROOT / "tools/install.py"), "install", "--destdir", "/",
             "--prefix", f"{tmp}/usr"])
        volume_dir, datapath_dir = Path(tmp, VOLUME_DIR), Path(tmp, DATAPATH_DIR)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ZFSAGA_SYSLOG": "0",
               "ZFSAGA_STATE_DIR": f"{tmp}/state", "ZFSAGA_RUN_DIR": f"{tmp}/run",
               "ZFSAGA_SOCKET": f"{tmp}/run/server.sock"}
        fallback_note = Path(tmp, "run", "fallback")
        server = start_server(tmp, env)
        modes = {"server": env, "in-process": {**env, "ZFSAGA_SERVER": "0"},
                 "server, cli reads": {**env, "ZFSAGA_READS": "cli"}}

        def verb(script: str, mode: str = "server", /, **a) -> object:
            here = datapath_dir if script.startswith("Datapath.") else volume_dir
            out = run([str(here / script), "--json"], json.dumps({"dbg": "b", **a}),
                      modes[mode])
            if mode != "in-process" and fallback_note.exists():
                raise SystemExit(f"bench: {script} ran without the server: "
                                 f"{fallback_note.read_text()}")
            return json.loads(out)

        try:
            rows, counts, warm = measure(verb, repeat, root, shell, env, volume_dir)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        floor = timed(lambda: run(PASS), repeat)
        pyzfs = timed(lambda: run(["/usr/bin/python3", "-c", "import libzfs_core"]), repeat)
        query = next(r for r in rows if r[0] == "Plugin.Query")
    subprocess.run(["zfs", "destroy", "-r", "-R", root], capture_output=True)
    report(rows, counts, warm, floor, pyzfs, query, repeat)
    return 0


def measure(verb, repeat: int, root: str, shell: str, env: dict, volume_dir: Path):
    """rows: (label, server, in-process, shell[, server with cli reads]) in ms; counts: the
    sync tasks per mutating verb (ours, the shell's); warm: (layer calls, saga) in ms."""
    count = iter(range(10**6))
    rows: list[tuple] = []
    keys: list[str] = []
    snaps: list[str] = []

    def row(label, ours, theirs, cli_reads=False):
        measured = [label, timed(lambda: ours("server"), repeat),
                    timed(lambda: ours("in-process"), repeat), timed(theirs, repeat)]
        if cli_reads:
            measured.append(timed(lambda: ours("server, cli reads"), repeat))
        rows.append(tuple(measured))

    sr = verb("SR.attach", configuration=verb(
        "SR.create", uuid=str(uuid.uuid4()), name="b", description="",
        configuration={"dataset": f"{root}/sr"}))

    def shell_create() -> None:
        run(["zfs", "create", "-s", "-V", "8M", "-o", "xapi:name=v", "-o", "xapi:description=",
             f"{shell}/v{next(count)}"])

    row("Volume.create",
        lambda m: keys.append(verb("Volume.create", m, sr=sr, name="v", description="",
                                   size=8 << 20, sharable=False)["key"]),
        shell_create)
    vol = f"{shell}/v0"
    stat_shell = ["zfs", "get", "-Hp", "-o", "property,value", "all", vol]
    row("Volume.stat", lambda m: verb("Volume.stat", m, sr=sr, key=keys[0]),
        lambda: run(stat_shell), cli_reads=True)
    row("SR.ls", lambda m: verb("SR.ls", m, sr=sr),
        lambda: run(["zfs", "get", "-r", "-Hp", "all", shell]), cli_reads=True)
    row("SR.stat", lambda m: verb("SR.stat", m, sr=sr),
        lambda: (run(["zfs", "get", "-Hp", "used,available", shell]),
                 run(["zpool", "list", "-H", "-o", "health", POOL])), cli_reads=True)
    row("Volume.snapshot",
        lambda m: snaps.append(verb("Volume.snapshot", m, sr=sr, key=keys[0])["key"]),
        lambda: run(["zfs", "snapshot", f"{vol}@s{next(count)}"]))
    shell_snap = run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", vol]).split()[0]
    row("Volume.clone", lambda m: verb("Volume.clone", m, sr=sr, key=snaps[0]),
        lambda: run(["zfs", "clone", shell_snap, f"{shell}/c{next(count)}"]))
    sized = iter(range(16, 16 + 8 * 10**3, 8))
    row("Volume.resize",
        lambda m: verb("Volume.resize", m, sr=sr, key=keys[0], new_size=next(sized) << 20),
        lambda: run(["zfs", "set", f"volsize={next(sized)}M", vol]))
    row("Volume.set", lambda m: verb("Volume.set", m, sr=sr, key=keys[0], k="vdi-type",
                                     v=f"user{next(count)}"),
        lambda: run(["zfs", "set", f"xapi:vdi-type=user{next(count)}", vol]))
    # Revert to a snapshot that is not the latest, keeping the others: what a shell driver
    # must run for the same (ZFS's rollback only reaches the latest).
    for _ in range(2):
        snaps.append(verb("Volume.snapshot", sr=sr, key=keys[0])["key"])
        run(["zfs", "snapshot", f"{vol}@r{next(count)}"])

    def shell_revert() -> None:
        n = next(count)
        run(["zfs", "clone", shell_snap, f"{vol}.new{n}"])
        run(["zfs", "rename", vol, f"{vol}.old{n}"])
        run(["zfs", "rename", f"{vol}.new{n}", vol])
        run(["zfs", "promote", vol])
        run(["zfs", "set", f"xapi:retired{n}=yes", f"{vol}.old{n}"])

    row("Volume.revert",
        lambda m: verb("Volume.revert", m, sr=sr, snapshot=snaps[0], key=keys[0]),
        shell_revert)
    doomed = [verb("Volume.create", sr=sr, name="d", description="", size=8 << 20,
                   sharable=False)["key"] for _ in range(2 * repeat)]
    theirs = [f"{shell}/d{i}" for i in range(repeat)]
    for name in theirs:
        run(["zfs", "create", "-s", "-V", "8M", name])
    row("Volume.destroy", lambda m: verb("Volume.destroy", m, sr=sr, key=doomed.pop()),
        lambda: run(["zfs", "destroy", theirs.pop()]))
    row("Plugin.Query", lambda m: verb("Plugin.Query", m), lambda: run(PASS))

    # The datapath, and a VM's start and stop as xapi makes them for one disk.
    uri = verb("Volume.stat", sr=sr, key=keys[0])["uri"][0]
    attach_shell = ["zfs", "get", "-Hp", "-o", "value", "volblocksize,refreservation", vol]
    activate_shell = ["zfs", "get", "-H", "-o", "value", "type", vol]
    row("Datapath.attach", lambda m: verb("Datapath.attach", m, uri=uri, domain="0"),
        lambda: run(attach_shell), cli_reads=True)
    row("Datapath.activate", lambda m: verb("Datapath.activate", m, uri=uri, domain="0"),
        lambda: run(activate_shell), cli_reads=True)
    row("Datapath.deactivate", lambda m: verb("Datapath.deactivate", m, uri=uri, domain="0"),
        lambda: run(NOTHING))
    row("Datapath.detach", lambda m: verb("Datapath.detach", m, uri=uri, domain="0"),
        lambda: run(NOTHING))

    def vm_start(m: str) -> None:
        for _ in range(3):
            verb("Volume.stat", m, sr=sr, key=keys[0])
        verb("Datapath.attach", m, uri=uri, domain="0")
        verb("Datapath.activate", m, uri=uri, domain="0")

    def vm_stop(m: str) -> None:
        verb("Volume.stat", m, sr=sr, key=keys[0])
        verb("Datapath.deactivate", m, uri=uri, domain="0")
        verb("Volume.stat", m, sr=sr, key=keys[0])
        verb("Datapath.detach", m, uri=uri, domain="0")

    row("VM start", vm_start, lambda: ([run(stat_shell) for _ in range(3)], run(attach_shell),
                                       run(activate_shell)), cli_reads=True)
    row("VM stop", vm_stop, lambda: (run(stat_shell), run(NOTHING), run(stat_shell),
                                     run(NOTHING)), cli_reads=True)
    counts, warm = in_this_process(repeat, sr, keys[0], snaps[0], f"{root}/layer", env,
                                   volume_dir)
    return rows, counts, warm


def in_this_process(repeat: int, sr: str, key: str, older: str, layer_root: str, env: dict,
                    volume_dir: Path) -> tuple[dict, dict]:
    """Each mutating verb's saga run in this warm process (the plugin's dispatcher, no
    interpreter start, no relay, no fork), its layer calls counted; and the same ZFS work as
    the shell's commands made through the layer back to back (no saga). Both in ms."""
    sys.path.insert(0, str(ROOT))
    os.environ.update(env)
    import zfsaga.backend
    from zfsaga.plugin import dispatch
    from zfsaga.steps.zfs.real import RealZfs

    seen: list[Counting] = []
    opened = zfsaga.backend.open_zfs

    def counted(hooks=None, **kw):
        seen.append(Counting())
        return opened(seen[-1], **kw)

    zfsaga.backend.open_zfs = counted

    def saga(verb: str, **a) -> dict:
        out = io.StringIO()
        seen.clear()
        code = dispatch.answer(verb, ["--json"], io.BytesIO(json.dumps({"dbg": "b", **a})
                                                             .encode()), out, str(volume_dir))
        if code != 0:
            raise SystemExit(f"bench: {verb} in this process: {out.getvalue()}")
        return json.loads(out.getvalue())

    layer = RealZfs(in_process=True)  # unguarded: the bench makes its calls outside a saga
    n = iter(range(10**6))
    vol = f"{layer_root}/v"
    layer.create_zvol(vol, 8 << 20, props={"xapi:name": "v"})
    layer.snapshot([f"{vol}@s"])
    layer_doomed = [f"{layer_root}/d{i}" for i in range(repeat)]
    for name in layer_doomed:
        layer.create_zvol(name, 8 << 20)

    def layer_revert() -> None:
        i = next(n)
        layer.clone(f"{vol}@s", f"{vol}.new{i}")
        layer.rename(vol, f"{vol}.old{i}")
        layer.rename(f"{vol}.new{i}", vol)
        layer.promote(vol)
        layer.set_props(f"{vol}.old{i}", {"xapi:retired": "yes"})

    sized = iter(range(16, 16 + 8 * 10**3, 8))
    snap = saga("Volume.snapshot", sr=sr, key=key)["key"]
    doomed = [saga("Volume.create", sr=sr, name="d", description="", size=8 << 20,
                   sharable=False)["key"] for _ in range(repeat + 1)]
    work = {
        "Volume.create": (
            lambda: saga("Volume.create", sr=sr, name="v", description="", size=8 << 20,
                         sharable=False),
            lambda: layer.create_zvol(f"{layer_root}/c{next(n)}", 8 << 20,
                                      props={"xapi:name": "v"}), 1),
        "Volume.snapshot": (lambda: saga("Volume.snapshot", sr=sr, key=key),
                            lambda: layer.snapshot([f"{vol}@s{next(n)}"]), 1),
        "Volume.clone": (lambda: saga("Volume.clone", sr=sr, key=snap),
                         lambda: layer.clone(f"{vol}@s", f"{layer_root}/k{next(n)}"), 1),
        "Volume.resize": (
            lambda: saga("Volume.resize", sr=sr, key=key, new_size=next(sized) << 20),
            lambda: layer.set_props(vol, {"volsize": str(next(sized) << 20)}), 1),
        "Volume.set": (lambda: saga("Volume.set", sr=sr, key=key, k="vdi-type",
                                    v=f"w{next(n)}"),
                       lambda: layer.set_props(vol, {"xapi:vdi-type": f"w{next(n)}"}), 1),
        "Volume.revert": (lambda: saga("Volume.revert", sr=sr, snapshot=older, key=key),
                          layer_revert, 5),
        "Volume.destroy": (lambda: saga("Volume.destroy", sr=sr, key=doomed.pop()),
                           lambda: layer.destroy(layer_doomed.pop()), 1),
    }
    counts, warm = {}, {}
    journal = JournalClock()
    for label, (ours, same, shell_syncs) in work.items():
        in_saga = timed(ours, repeat)
        journal.count, journal.spent = 0, 0.0
        start = time.perf_counter()
        ours()  # once more, its time taken apart: ZFS mutations, ZFS reads, journal, the rest
        whole = time.perf_counter() - start
        mutations = sum(c.spent[True] for c in seen)
        reads = sum(c.spent[False] for c in seen)
        counts[label] = (sum(c.mutations for c in seen), shell_syncs,
                         sorted({op for c in seen for op in c.ops}),
                         (mutations * 1e3, reads * 1e3, sum(c.calls - c.mutations for c in seen),
                          journal.spent * 1e3, journal.count,
                          (whole - mutations - reads - journal.spent) * 1e3))
        warm[label] = (timed(same, repeat), in_saga)
    zfsaga.backend.open_zfs = opened
    return counts, warm


def report(rows, counts, warm, floor, pyzfs, query, repeat) -> None:
    date = time.strftime("%Y-%m-%d")
    print(f"\nverbs on real ZFS ({date}, one run in the guest), median of {repeat} (ms); "
          f"python3 -c pass = {floor:.0f}, python3 -c 'import libzfs_core' = {pyzfs:.0f}")
    print(f"{'verb':<20} {'server':>7} {'in-proc':>8} {'shell':>7} {'srv/sh':>6} "
          f"{'cli rd':>7}  target")
    for label, server, in_proc, theirs, *cli in rows:
        ratio = server / theirs if theirs > 1 else float("nan")
        cli_text = f"{cli[0]:>7.0f}" if cli else f"{'':>7}"
        if label == "VM start":
            verdict = f"<= 1.0x shell: {'met' if ratio <= 1.0 else 'MISSED'}"
        elif label == "VM stop":
            verdict = f"({server / floor:.2f}x four python3 -c pass: {4 * floor:.0f})"
        elif label in READ_ONLY:
            verdict = (f"<= 1.3x python3 -c pass ({1.3 * floor:.0f}): "
                       f"{'met' if server <= 1.3 * floor else 'MISSED'} ({server / floor:.2f}x)")
        else:
            verdict = f"<= 1.5x shell: {'met' if ratio <= 1.5 else 'MISSED'}"
        print(f"{label:<20} {server:>7.0f} {in_proc:>8.0f} {theirs:>7.0f} {ratio:>6.2f} "
              f"{cli_text}  {verdict}")
    print("\ncli rd: through the server with ZFSAGA_READS=cli (reads as `zfs` processes, "
          "not channel programs)")
    print(f"\nmutating verbs against the same ZFS calls back to back in one warm process "
          f"(target: server - layer <= 1.2 x python3 -c pass = {1.2 * floor:.0f} ms)")
    print(f"{'verb':<16} {'layer':>6} {'saga':>6} {'server':>7} {'above':>6}  "
          f"sync tasks ours/shell  target")
    by_label = {r[0]: r for r in rows}
    for label, (layer, saga) in warm.items():
        server = by_label[label][1]
        ours, theirs, ops, _ = counts[label]
        above = server - layer
        print(f"{label:<16} {layer:>6.0f} {saga:>6.0f} {server:>7.0f} {above:>6.0f}  "
              f"{ours:>3}/{theirs:<3} {','.join(ops):<28} "
              f"{'met' if above <= 1.2 * floor else 'MISSED'}")
    print("\none saga in this warm process taken apart (ms): ZFS mutations (sync tasks), ZFS "
          "reads (calls), journal commits and checkpoints (count), the rest (Python: engine, "
          "probes, locks)")
    for label, (_, _, _, (mut, rd, nrd, jr, njr, rest)) in counts.items():
        print(f"{label:<16} zfs mutations {mut:>6.0f}  reads {rd:>6.0f} ({nrd:>2})  "
              f"journal {jr:>6.0f} ({njr:>2})  rest {rest:>6.0f}")
    print(f"\nfixed cost of a served call (Plugin.Query: client start, connect, fork, relay): "
          f"{query[1]:.0f} ms = {query[1] / floor:.2f}x python3 -c pass; in-process "
          f"{query[2]:.0f} ms")
    print("saga: the verb in this warm process (dispatcher, saga, journal; no interpreter, "
          "no relay, no fork); layer: the shell's ZFS work as layer calls, no saga")


if __name__ == "__main__":
    sys.exit(main())
