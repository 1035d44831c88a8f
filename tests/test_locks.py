"""The locks' waiting line (state/locks.py): waiters are served in the order they came, a
create never overtakes an SR-wide saga that came first, and a waiter killed in line holds
nobody up. Real processes, as zfsaga's calls are."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from zfsaga.sagas.resources import lock_of
from zfsaga.state.locks import NestedLock, ResourceLock

WAITER = """
import sys, time
from zfsaga.sagas.resources import lock_of
directory, resource, tag, log = sys.argv[1:5]
with lock_of(directory, resource).acquire(60):
    with open(log, "a") as f:
        f.write(tag + "\\n")
    time.sleep(0.05)
"""


def _waiter(tmp_path: Path, resource: str, tag: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WAITER, str(tmp_path), resource, tag,
                             str(tmp_path / "order")])


def _in_line(lock, count: int) -> None:
    line = lock.line_path.with_suffix(".line")
    deadline = time.monotonic() + 30
    while len(list(line.glob("*"))) < count:
        assert time.monotonic() < deadline, "the waiters never joined the line"
        time.sleep(0.02)


def test_waiters_are_served_in_the_order_they_came(tmp_path: Path) -> None:
    holder = ResourceLock(tmp_path, "sr-1").acquire(1)
    waiters = []
    for i in range(6):
        waiters.append(_waiter(tmp_path, "sr-1", str(i)))
        _in_line(holder, i + 1)  # each has joined before the next starts
    holder.release()
    assert [w.wait(60) for w in waiters] == [0] * 6
    assert (tmp_path / "order").read_text().split() == [str(i) for i in range(6)]


def test_a_create_never_overtakes_an_sr_wide_saga_that_came_first(tmp_path: Path) -> None:
    running = lock_of(tmp_path, "sr-1/new-a").acquire(1)  # a create: the SR's lock shared
    assert isinstance(running, NestedLock)
    wide = _waiter(tmp_path, "sr-1", "sr-wide")  # waits for the running create
    _in_line(ResourceLock(tmp_path, "sr-1"), 1)
    create = _waiter(tmp_path, "sr-1/new-b", "create")  # free to share the SR, but came later
    _in_line(lock_of(tmp_path, "sr-1/new-b"), 1)
    time.sleep(0.5)
    assert not (tmp_path / "order").exists()
    running.release()
    assert [wide.wait(60), create.wait(60)] == [0, 0]
    assert (tmp_path / "order").read_text().split() == ["sr-wide", "create"]


def test_a_waiter_killed_in_line_holds_nobody_up(tmp_path: Path) -> None:
    holder = ResourceLock(tmp_path, "sr-1").acquire(1)
    dead = _waiter(tmp_path, "sr-1", "dead")
    _in_line(holder, 1)
    dead.kill()
    dead.wait()
    holder.release()
    started = time.monotonic()
    with ResourceLock(tmp_path, "sr-1").acquire(5):
        assert time.monotonic() - started < 2
    assert not (tmp_path / "order").exists()


CHURN = """
import sys, uuid
from zfsaga.sagas.resources import lock_of
directory, rounds = sys.argv[1], int(sys.argv[2])
for i in range(rounds):
    # a create's own narrow lock (a new resource each time), and the SR-wide one
    for resource in (f"sr-1/new-{uuid.uuid4()}", "sr-1"):
        with lock_of(directory, resource).acquire(60):
            pass
"""


def test_the_line_leaves_no_directory_behind(tmp_path: Path) -> None:
    """Every waiter's line directory goes when its last waiter leaves (each Volume.create
    locks a resource of its own: kept, they would pile up for ever), while waiters of the same
    lines come and go in parallel: a waiter that finds its line gone makes it again."""
    churners = [subprocess.Popen([sys.executable, "-c", CHURN, str(tmp_path), "40"])
                for _ in range(4)]
    assert [c.wait(timeout=120) for c in churners] == [0] * 4
    locks = tmp_path / "locks"
    assert len(list(locks.glob("*.lock"))) == 4 * 40 + 1  # lock files stay (see the module)
    assert list(locks.glob("*.line")) == []
