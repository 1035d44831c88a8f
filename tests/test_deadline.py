"""The call deadline (plugin/deadline.py): an answer within a bounded time when the work does
not end, the work itself going on; an answer in time passed through untouched."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

from zfsaga.plugin.deadline import run_bounded


def test_an_answer_in_time_is_passed_through_with_its_exit_status(capfd) -> None:
    def work(out) -> int:
        import sys

        sys.stderr.write("a log line\n")
        out.write('{"ok": [1, 2]}\n')
        return 3

    stdout = io.StringIO()
    assert run_bounded("Volume.stat", work, stdout, __import__("sys").stderr, 30) == 3
    assert stdout.getvalue() == '{"ok": [1, 2]}\n'
    assert "a log line" in capfd.readouterr().err


def test_work_past_the_deadline_is_answered_busy_and_goes_on(tmp_path: Path) -> None:
    done = tmp_path / "done"

    def work(out) -> int:
        time.sleep(2.5)
        done.write_text("finished")  # the saga finishes after the caller was answered
        out.write('{"late": true}\n')  # into a pipe nobody reads any more: no crash
        return 0

    stdout = io.StringIO()
    start = time.monotonic()
    code = run_bounded("Volume.snapshot", work, stdout, __import__("sys").stderr, 0.5)
    took = time.monotonic() - start
    assert code == 1 and took < 2.0
    error = json.loads(stdout.getvalue())
    assert error["code"] == "SR_BACKEND_FAILURE" and error["params"][0] == "Busy"
    assert "did not answer within 0 s" not in error["params"][1]
    assert "zpool status" in error["params"][1] and "zfsaga resume" in error["params"][1]
    deadline = time.monotonic() + 10
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert done.read_text() == "finished"


def test_a_call_whose_process_dies_is_answered_with_the_error_form() -> None:
    """A kill -9, or a crash inside a library, of the process doing the call: xapi gets the
    error JSON (not an empty answer), with the exit status, and where the work stands."""
    import os

    def work(out) -> int:
        os._exit(137)

    stdout = io.StringIO()
    assert run_bounded("SR.create", work, stdout, __import__("sys").stderr, 30) == 137
    error = json.loads(stdout.getvalue())
    assert error["code"] == "SR_BACKEND_FAILURE" and error["params"][0] == "Internal_error"
    assert "exit status 137" in error["params"][1] and "journaled" in error["params"][1]


def test_the_entry_point_reads_the_deadline_as_the_in_process_path_does(monkeypatch) -> None:
    """The thin entry point restates deadline() (it imports nothing of zfsaga when served):
    the two must give every setting the same meaning."""
    from zfsaga.plugin import deadline, entry

    for raw in ("", "2", "0.5", "0", "-3", "nan", "inf", "1e9", "abc", " 7 "):
        monkeypatch.setenv("ZFSAGA_CALL_DEADLINE", raw)
        assert entry._deadline() == deadline.deadline(), raw
    monkeypatch.delenv("ZFSAGA_CALL_DEADLINE")
    assert entry._deadline() == deadline.deadline() == deadline.DEFAULT_DEADLINE
