"""The layer's process runner (steps/zfs/process.py), which replaced subprocess so that a
read-only verb's start stays lean: what it must still do as subprocess did. Host tier."""
from __future__ import annotations

import os
import time

import pytest

from zfsaga.steps.zfs import process


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_status_stdout_and_stderr_come_back_apart() -> None:
    done = process.run(["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_arguments_reach_the_program_as_they_are_never_through_a_shell(tmp_path) -> None:
    hostile = ["a;rm -rf /", "$(touch x)", "`id`", "x y", "", "é\n"]
    done = process.run(["printf", "%s|", *hostile], 10)
    assert done.returncode == 0 and done.stdout == "|".join(hostile) + "|"
    assert not (tmp_path / "x").exists() and not os.path.exists("x")


def test_both_pipes_are_drained_together_so_a_large_output_never_deadlocks() -> None:
    # 1 MiB on each stream, interleaved: a reader of one pipe at a time would block forever.
    script = "i=0; while [ $i -lt 64 ]; do head -c 16384 /dev/zero | tr '\\0' o; " \
             "head -c 16384 /dev/zero | tr '\\0' e >&2; i=$((i+1)); done"
    done = process.run(["sh", "-c", script], 60)
    assert len(done.stdout) == len(done.stderr) == 1 << 20
    assert set(done.stdout) == {"o"} and set(done.stderr) == {"e"}


def test_stdin_is_empty_not_the_callers() -> None:
    assert process.run(["cat"], 10).stdout == ""


def children_named(comm: str) -> list[int]:
    """This process's children (zombies included) whose command is `comm`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        if name == comm and int(rest.split()[1]) == os.getpid():
            found.append(int(entry))
    return found


def test_a_process_past_its_time_is_killed_and_reaped() -> None:
    began = time.monotonic()
    with pytest.raises(process.TimedOut):
        process.run(["sh", "-c", "echo started; exec sleep 30"], 0.5)
    assert time.monotonic() - began < 10
    assert children_named("sleep") == []  # killed and reaped: no orphan, no zombie


def test_a_missing_program_raises_and_leaks_no_descriptor() -> None:
    before = open_fds()
    with pytest.raises(FileNotFoundError):
        process.run(["/nonexistent/zfs", "get"], 10)
    process.run(["true"], 10)
    assert open_fds() == before


def test_undecodable_output_is_replaced_not_raised() -> None:
    done = process.run(["printf", "\\377ok"], 10)
    assert done.returncode == 0 and done.stdout.endswith("ok") and "\ufffd" in done.stdout
