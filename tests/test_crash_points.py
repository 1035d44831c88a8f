"""Crash-point enumeration of the revert saga (tests/crash_harness.py): exhaustive on the model
(every crash point, every recovery crash point, resume and abort), first-level plus sampled
second-level on real ZFS in the guest; and proof that the harness can fail."""
from __future__ import annotations

import os
import uuid

import pytest

from tests.conftest import CRASH_KEY, POOL, destroy_tree, real_zfs
from tests.crash_harness import Harness, describe_failures, model_backend, summary
from zfsaga.steps.promote import PromoteClone
from zfsaga.steps.rename import RenameDataset

SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None


def _record(request: pytest.FixtureRequest, line: str) -> None:
    request.config.stash.setdefault(CRASH_KEY, []).append(line)
    print(line)


def test_every_crash_point_on_the_model_recovers(request: pytest.FixtureRequest) -> None:
    report = Harness(model_backend, "model", journal_parent=SHM).enumerate()
    _record(request, summary(report))
    assert report.boundaries >= 40  # 7 steps: the enumeration really walked the whole saga
    assert {c.status for c in report.cases} >= {"succeeded", "compensated"}
    assert not report.failures, describe_failures(report)


@pytest.mark.parametrize("step_type", [PromoteClone, RenameDataset])
def test_a_broken_compensation_is_caught(monkeypatch: pytest.MonkeyPatch,
                                         step_type: type) -> None:
    """Mutation test: with a compensation that does nothing, some crash case must fail."""
    monkeypatch.setattr(step_type, "undo", lambda step, ctx: None)
    report = Harness(model_backend, "model (broken)", journal_parent=SHM).enumerate(
        second_level=lambda k, reached: [])
    assert report.failures, "the harness passed a saga whose compensation does nothing"
    assert all(c.problems for c in report.failures)


@pytest.mark.realzfs
@pytest.mark.timeout(2400)  # ~110 cases at ~7 s each in the emulated guest
def test_crash_points_on_real_zfs(request: pytest.FixtureRequest) -> None:
    def backend():
        real = real_zfs()  # fresh per case: no fault hooks carried over from the last one
        root = f"{POOL}/c{uuid.uuid4().hex[:10]}"
        real.create_filesystem(root)
        return real, root

    # Every first-level point in both modes; for every 8th of them the recovery is crashed
    # too, at its middle boundary (the model covers every pair; a real case costs ~7 s in the
    # emulated guest). ZFSAGA_REAL_CRASH_SECOND_LEVEL=all runs every pair here too.
    def sample(k: int, reached: int) -> list[int]:
        return [max(1, reached // 2)] if k % 8 == 0 and reached else []

    levels = os.environ.get("ZFSAGA_REAL_CRASH_SECOND_LEVEL", "sample")
    harness = Harness(backend, "real ZFS", cleanup=lambda z, root: destroy_tree(root))
    report = harness.enumerate(second_level=None if levels == "all" else sample)
    _record(request, summary(report))
    assert not report.failures, describe_failures(report)
