"""Calls queued on one SR behave as if they ran one after the other (issue 18, defect 1). Each
verb looks its VDI up before it waits for the SR's lock; a `Volume.destroy` served first must
leave the verb behind it answering what it answers in a serial order: Volume_does_not_exist,
with nothing recorded and nothing changed. The race is made deterministic: the test holds the
SR's lock (state/locks.py) while the destroy, then the verb, join its line, through the
installed entry points on the file-shared model; then lets go, and they are served in the
order they came. One small flow on real ZFS: the headline, a destroy then a revert."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_plugin_verbs import Host, host, real_host  # noqa: F401 (fixtures)
from tests.xapi_daemon import ScriptError, parse_error
from zfsaga.state.journal import Journal
from zfsaga.state.locks import ResourceLock
from zfsaga.steps import meta, srs
from zfsaga.steps.srs import sr_key

MiB = 1 << 20
#: The exhaustive cases run on the model only (the `host` fixture's real half would make and
#: destroy a root on real ZFS for each); real ZFS runs the headline, at the end.
ON_MODEL = pytest.mark.parametrize("host", ["model"], indirect=True)

#: Every mutating Volume verb that takes an existing VDI, and its arguments for volume `vol`
#: whose snapshot is `snap` (a destroy second: the same key destroyed twice).
VERBS = {
    "Volume.revert": lambda vol, snap: {"key": vol, "snapshot": snap},
    "Volume.snapshot": lambda vol, snap: {"key": vol},
    "Volume.resize": lambda vol, snap: {"key": vol, "new_size": 8 * MiB},
    "Volume.clone": lambda vol, snap: {"key": vol},
    "Volume.set": lambda vol, snap: {"key": vol, "k": "k2", "v": "v"},
    "Volume.unset": lambda vol, snap: {"key": vol, "k": "k1"},
    "Volume.set_name": lambda vol, snap: {"key": vol, "new_name": "renamed"},
    "Volume.set_description": lambda vol, snap: {"key": vol, "new_description": "changed"},
    "Volume.destroy": lambda vol, snap: {"key": vol},
}


class Queue:
    """Calls made to wait on the SR's lock, in the order they are started: the test holds the
    lock until every call has looked its VDI up and joined the line."""

    def __init__(self, host: Host, sr: str) -> None:
        self.host = host
        guid = host.zfs.get_props(sr, ["guid"])["guid"].value
        state = Path(host.xapi.env["ZFSAGA_STATE_DIR"]) / sr_key(guid)
        self.lock = ResourceLock(state, sr_key(guid))
        self.line = self.lock.path.with_suffix(".line")
        self.calls: list[tuple[str, subprocess.Popen]] = []

    def __enter__(self) -> "Queue":
        self.lock.acquire(5)
        return self

    def call(self, verb: str, **args) -> None:
        """Start `verb` and wait until it waits in line (its lookup is done by then)."""
        proc = subprocess.Popen([str(self.host.xapi.script(verb)), "--json"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.host.xapi.env)
        proc.stdin.write(json.dumps({"dbg": "test", **args}))
        proc.stdin.close()
        self.calls.append((verb, proc))
        deadline = time.monotonic() + 60
        while len(list(self.line.glob("*"))) < len(self.calls):
            assert proc.poll() is None, f"{verb} ended before it queued: {proc.stdout.read()}"
            assert time.monotonic() < deadline, f"{verb} never joined the SR's line"
            time.sleep(0.02)

    def __exit__(self, *exc) -> None:
        self.lock.release()

    def answers(self) -> list[str]:
        """Each call's answer, in order: "ok" or its error's IDL name and message."""
        out = []
        for verb, proc in self.calls:
            proc.wait(timeout=300)  # its answer is one line: no pipe fills meanwhile
            stdout, stderr = proc.stdout.read(), proc.stderr.read()
            done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
            out.append("ok" if proc.returncode == 0 else _named(parse_error(done)))
        return out


def _named(err: ScriptError) -> str:
    return err.name if err.name == "Volume_does_not_exist" else f"{err.name}: {err.params}"


def _state(host: Host, sr: str) -> dict:
    """Every dataset and snapshot of the SR: guid, size and user properties (but the journal's
    witness, which every saga advances: srs.JOURNAL_GEN)."""
    own = host.zfs.tree_user_props(sr)
    return {n: (p["guid"].value, p["volsize"].value,
                sorted((k, v) for k, v in own.get(n, {}).items() if k != srs.JOURNAL_GEN))
            for n, p in host.zfs.list_tree(sr, ["guid", "volsize"]).items()}


def _kinds(host: Host, sr: str) -> list[str]:
    """The kind of every saga the SR's journal recorded, oldest first."""
    guid = host.zfs.get_props(sr, ["guid"])["guid"].value
    journal = Journal(Path(host.xapi.env["ZFSAGA_STATE_DIR"]) / sr_key(guid) / "journal.db")
    try:
        return [row.kind for row in sorted(journal.list(), key=lambda r: r.created)]
    finally:
        journal.close()


def _volume(host: Host, sr: str, snapshot: bool) -> tuple[str, str | None]:
    """A volume with a key set (unset has one to remove), and a snapshot of it if asked."""
    call = host.xapi.call
    vol = call("Volume.create", sr=sr, name="v", description="", size=4 * MiB,
               sharable=False)["key"]
    call("Volume.set", sr=sr, key=vol, k="k1", v="v1")
    return vol, call("Volume.snapshot", sr=sr, key=vol)["key"] if snapshot else None


@ON_MODEL
@pytest.mark.parametrize("snapshot", [False, True], ids=["alone", "with-snapshot"])
def test_a_verb_queued_behind_a_destroy_finds_no_volume(host: Host, snapshot: bool) -> None:
    """For every verb: destroy(V) and verb(V) both look V up, then queue in that order. The
    verb answers Volume_does_not_exist and records nothing; the SR is exactly what the
    destroys alone make of it: V gone (retired and hidden while its snapshot needs it), the
    snapshot still listed, untouched; no revert brought V back, no snapshot, clone, resize or
    metadata landed on a retired head. With no snapshot, only the verbs that need none."""
    sr = host.sr()
    verbs = [v for v in VERBS if snapshot or v != "Volume.revert"]
    made = {verb: _volume(host, sr, snapshot) for verb in verbs}
    before, sagas = _state(host, sr), len(_kinds(host, sr))
    with Queue(host, sr) as queue:
        for verb, (vol, snap) in made.items():
            queue.call("Volume.destroy", sr=sr, key=vol)
            queue.call(verb, sr=sr, **VERBS[verb](vol, snap))
    answers = queue.answers()
    assert answers[0::2] == ["ok"] * len(verbs)
    assert dict(zip(verbs, answers[1::2])) == {verb: "Volume_does_not_exist" for verb in verbs}
    assert _kinds(host, sr)[sagas:] == ["volume.destroy"] * len(verbs)
    listed = {v["key"] for v in host.xapi.call("SR.ls", sr=sr)}
    assert listed == {snap for _, snap in made.values() if snap}
    # What the destroys alone make: each home gone, or (with its snapshot) kept, marked
    # retired by its destroy (the mark's value, a saga id, shown as "?"), nothing else.
    homes = {f"{sr}/{vol}" for vol, _ in made.values()}
    expected = {}
    for name, (guid, size, props) in before.items():
        if name in homes:
            if not snapshot:
                continue
            props = sorted({**dict(props), meta.RETIRED: "?"}.items())
        expected[name] = (guid, size, props)
    shown = {name: (guid, size, sorted((k, "?" if k == meta.RETIRED else v) for k, v in props))
             for name, (guid, size, props) in _state(host, sr).items()}
    assert shown == expected


#: The verbs that take a snapshot's key, and their arguments for snapshot `snap` of `vol`.
ON_SNAPSHOT = {
    "Volume.revert": lambda vol, snap: {"key": vol, "snapshot": snap},
    "Volume.clone": lambda vol, snap: {"key": snap},
    "Volume.set": lambda vol, snap: {"key": snap, "k": "k2", "v": "v"},
    "Volume.set_name": lambda vol, snap: {"key": snap, "new_name": "renamed"},
    "Volume.destroy": lambda vol, snap: {"key": snap},
}


@ON_MODEL
@pytest.mark.parametrize("cloned", [False, True], ids=["alone", "cloned"])
def test_a_verb_queued_behind_a_snapshots_destroy_finds_no_snapshot(host: Host,
                                                                     cloned: bool) -> None:
    """The same for a snapshot: destroy(S) then verb(S) (revert(V, S) too), queued in that
    order. A snapshot with a clone is only marked for deferred destroy, and stays in ZFS: it
    is no VDI all the same (no revert to it, no clone of it, no metadata on it)."""
    sr = host.sr()
    made = {verb: _volume(host, sr, snapshot=True) for verb in ON_SNAPSHOT}
    clones = {host.xapi.call("Volume.clone", sr=sr, key=snap)["key"]
              for _, snap in made.values()} if cloned else set()
    sagas = len(_kinds(host, sr))
    with Queue(host, sr) as queue:
        for verb, (vol, snap) in made.items():
            queue.call("Volume.destroy", sr=sr, key=snap)
            queue.call(verb, sr=sr, **ON_SNAPSHOT[verb](vol, snap))
    answers = queue.answers()
    assert answers[0::2] == ["ok"] * len(made)
    assert dict(zip(made, answers[1::2])) == {verb: "Volume_does_not_exist" for verb in made}
    assert _kinds(host, sr)[sagas:] == ["volume.destroy"] * len(made)
    ls = {v["key"]: v for v in host.xapi.call("SR.ls", sr=sr)}
    assert set(ls) == {vol for vol, _ in made.values()} | clones
    assert all(v["name"] == "v" and v["keys"] == {"k1": "v1"} for v in ls.values()
               if v["key"] not in clones)


@ON_MODEL
def test_every_saga_refuses_what_a_destroy_left_by_name(host: Host) -> None:
    """Below the plugin, by name (an operator's `zfsaga revert`, or a caller that passed a
    name it read before the lock): each saga's resolve refuses a volume kept retired for its
    snapshots, and a snapshot marked for deferred destroy, before anything is recorded."""
    from zfsaga.sagas import (volume_clone, volume_destroy, volume_resize, volume_set,
                              volume_snapshot)
    from zfsaga.sagas import volume_revert as revert
    from zfsaga.sagas.engine import Engine
    from zfsaga.steps.zfs.errors import NotFound

    sr = host.sr()
    vol, snap = _volume(host, sr, snapshot=True)
    host.xapi.call("Volume.clone", sr=sr, key=snap)  # so the snapshot's destroy is deferred
    host.xapi.call("Volume.destroy", sr=sr, key=vol)
    older = host.xapi.call("Volume.snapshot", sr=sr,
                           key=host.xapi.call("Volume.create", sr=sr, name="w", description="",
                                              size=MiB, sharable=False)["key"])["key"]
    host.xapi.call("Volume.clone", sr=sr, key=older)
    host.xapi.call("Volume.destroy", sr=sr, key=older)
    home, snapshot, deferred = f"{sr}/{vol}", f"{sr}/{snap}", f"{sr}/{older}"
    assert host.zfs.get_props(deferred, ["defer_destroy"])["defer_destroy"].value == "on"
    guid = host.zfs.get_props(sr, ["guid"])["guid"].value
    state = Path(host.xapi.env["ZFSAGA_STATE_DIR"]) / sr_key(guid)
    engine = Engine(host.zfs, Journal(state / "journal.db"), state, lock_wait=5)
    key = sr_key(guid)
    before, sagas = _state(host, sr), _kinds(host, sr)
    calls = {
        "revert of a retired volume": lambda: revert.start(engine, sr, home, snapshot),
        "revert to a deferred snapshot": lambda: revert.start(
            engine, sr, deferred.partition("@")[0], deferred),
        "snapshot": lambda: volume_snapshot.start(engine, key, sr, guid, home),
        "resize": lambda: volume_resize.start(engine, key, sr, guid, home, 8 * MiB),
        "clone": lambda: volume_clone.start(engine, key, sr, guid, home, False),
        "set": lambda: volume_set.start(engine, key, sr, guid, home, {meta.NAME: "x"}),
        "set on a deferred snapshot": lambda: volume_set.start(engine, key, sr, guid, deferred,
                                                               {meta.NAME: "x"}),
        "destroy again": lambda: volume_destroy.start(engine, key, sr, guid, home),
        "destroy a deferred snapshot again": lambda: volume_destroy.start(engine, key, sr,
                                                                          guid, deferred),
    }
    refused = {}
    for what, call in calls.items():
        try:
            call()
        except NotFound as exc:
            refused[what] = "destroyed" in str(exc)
    assert refused == {what: True for what in calls}
    assert _state(host, sr) == before and _kinds(host, sr) == sagas


@ON_MODEL
def test_the_sr_itself_or_a_snapshot_as_a_volume_is_refused_and_changes_nothing(
        host: Host) -> None:
    """The SR passed as a VDI key ("" names `<sr>/`, the SR's own dataset) is no VDI to any
    verb, destroy included; a snapshot's key where a volume is expected is refused, and
    revert to a volume, or to another volume's snapshot, too: each answers before anything
    is recorded."""
    sr = host.sr()
    vol, snap = _volume(host, sr, snapshot=True)
    _, theirs = _volume(host, sr, snapshot=True)
    before, sagas = _state(host, sr), _kinds(host, sr)
    cases = [(verb, VERBS[verb]("", snap), "Volume_does_not_exist") for verb in VERBS]
    cases += [(verb, VERBS[verb](snap, snap), "Invalid_argument")
              for verb in ("Volume.revert", "Volume.snapshot", "Volume.resize")]
    cases += [("Volume.revert", {"key": vol, "snapshot": vol}, "Invalid_argument"),
              ("Volume.revert", {"key": vol, "snapshot": theirs}, "Invalid_argument"),
              ("Volume.revert", {"key": vol, "snapshot": ""}, "Volume_does_not_exist")]
    answers = {}
    for verb, args, _ in cases:
        try:
            host.xapi.call(verb, sr=sr, **args)
            answers[verb, str(args)] = "ok"
        except ScriptError as err:
            answers[verb, str(args)] = err.name
    assert answers == {(verb, str(args)): expected for verb, args, expected in cases}
    assert _state(host, sr) == before and _kinds(host, sr) == sagas


@pytest.mark.realzfs
def test_a_revert_queued_behind_a_destroy_brings_nothing_back(real_host: Host) -> None:
    """The headline on real ZFS: V has a snapshot S; destroy(V) then revert(V, S), queued in
    that order. The revert answers Volume_does_not_exist; V stays retired and unlisted, S is
    still listed."""
    host = real_host
    sr = host.sr()
    vol, snap = _volume(host, sr, snapshot=True)
    with Queue(host, sr) as queue:
        queue.call("Volume.destroy", sr=sr, key=vol)
        queue.call("Volume.revert", sr=sr, key=vol, snapshot=snap)
    assert queue.answers() == ["ok", "Volume_does_not_exist"]
    assert [v["key"] for v in host.xapi.call("SR.ls", sr=sr)] == [snap]
    got = host.zfs.get_props(f"{sr}/{vol}", [meta.RETIRED])
    assert got[meta.RETIRED].local
    assert _kinds(host, sr)[-1] == "volume.destroy"
