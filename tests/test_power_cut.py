"""The whole guest dies at once (issue 9, part 2): QEMU killed in the middle of a saga (no
shutdown, no sync), the guest booted again on the same disk images, the pool imported, the
SR's first call recovering, the invariants checked (tests/power_cut.py is the guest's side).
This covers what the flush replay does not: the reboot path, the state filesystem mounted
again, a saga whose lock was held by a process that no longer exists.

A backup tool's round of changed block tracking after a cut mid-write runs here too (issue 21):
the bitmap comes from ZFS's own history, which the cut cannot lose.

CI cuts three sagas at chosen moments (just after a ZFS call returned, just after a journal
commit); `make powercut-soak N=50` cuts at random moments, as many times as asked."""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import summary_line
from zfsaga.guest import run as guest

#: (scenario, where to cut): just after a ZFS call returned, just after a journal commit.
CHOSEN = [("volume.revert:1", "zfs:after:promote"),
          ("volume.clone:1", "journal:after:step_done"),
          ("volume.destroy:1", "zfs:after:")]


def cut_when_armed():
    """The host's side of a cut, polled while the guest runs: at once when the guest wrote
    `cut` (or `finished`), or the seconds it wrote in `armed` after it wrote it."""
    armed_at: list[float] = []

    def cut(outdir: Path) -> bool:
        if (outdir / "cut").exists() or (outdir / "finished").exists():
            return True
        if (outdir / "armed").exists():
            if not armed_at:
                armed_at.append(time.monotonic())
            try:
                delay = float((outdir / "armed").read_text().split(":")[1])
            except (IndexError, ValueError):
                return False  # read while the guest was writing it: look again
            return time.monotonic() - armed_at[0] >= delay
        return False

    return cut


@dataclass
class CutRun:
    """Boots the guest over kept disks: each boot checks the cut before it and makes the next."""

    workdir: Path
    results: list[dict] = field(default_factory=list)
    pending: str | None = None
    boots: int = 0
    cut_label: str = ""

    def boot(self, start: str | None, at: str | None) -> None:
        out = self.workdir / f"boot{self.boots}"
        out.mkdir()
        self.boots += 1
        cmd = [sys.executable, "-m", "tests.power_cut"]
        env = {}
        if self.pending:
            cmd.append("--check")
            env["ZFSAGA_CUT_SEGMENT"] = self.pending
        if start:
            cmd += ["--start", start, "--at", at or "random:5"]
        rc = guest.run_in_guest(cmd, timeout=900, env=env, spares_dir=self.workdir,
                                cut=cut_when_armed() if start else None,
                                keep=("result.json", "segment.b64", "cut", "finished"),
                                keep_to=out)
        if self.pending:
            result_file = out / "result.json"
            assert result_file.exists(), f"boot {self.boots}: no result (exit {rc})"
            result = json.loads(result_file.read_text())
            result["cut_at"] = self.cut_label
            self.results.append(result)
            # A soak runs for an hour: say how each cut ended as it ends.
            print(f"cut {len(self.results)}: {result['scenario']} at {self.cut_label}: "
                  f"{'interrupted' if result['interrupted'] else 'outside a saga'}, "
                  f"{result['status']}, problems: {result['problems'] or 'none'}", flush=True)
        if start:
            assert rc == guest.KILLED, f"boot {self.boots}: the guest was not cut (exit {rc})"
            self.pending = (out / "segment.b64").read_text()
            self.cut_label = ((out / "cut").read_text() if (out / "cut").exists() else
                              "after the saga ended" if (out / "finished").exists() else at)
        else:
            self.pending = None


def run_cuts(workdir: Path, cuts: list[tuple[str, str]]) -> CutRun:
    runner = CutRun(workdir)
    for spec, at in cuts:
        runner.boot(spec, at)
    runner.boot(None, None)  # the last cut's check
    return runner


def report(runner: CutRun) -> str:
    interrupted = [r for r in runner.results if r["interrupted"]]
    bad = [r for r in runner.results if r["problems"]]
    ends: dict[str, int] = {}
    for r in runner.results:
        ends[r["status"]] = ends.get(r["status"], 0) + 1
    return (f"power cuts [QEMU killed]: {len(runner.results)} cuts in {runner.boots} boots, "
            f"{len(interrupted)} interrupted an active saga; ends: {ends}; "
            f"violations: {len(bad)}")


@pytest.mark.guestboot
@pytest.mark.timeout(2400)
def test_killing_the_guest_mid_saga_loses_nothing(request, tmp_path: Path) -> None:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is missing: run make setup")
    runner = run_cuts(tmp_path, CHOSEN)
    summary_line(request, report(runner))
    assert len(runner.results) == 3
    assert all(r["interrupted"] for r in runner.results), runner.results
    assert not [r for r in runner.results if r["problems"]], runner.results


@pytest.mark.guestboot
@pytest.mark.timeout(1800)
def test_a_cbt_backup_round_after_a_power_cut_mid_write(request, tmp_path: Path) -> None:
    """Issue 21: boot 1 makes an SR on a pool of its own, backs a CBT volume up twice (a
    full copy, then its changed blocks) onto a replica on a spare disk, and is cut while the
    VM writes; boot 2 imports the pool through SR.attach, snapshots, and copies the blocks
    changed since the last, metadata-only, snapshot: the replica equals the new snapshot, and
    every write that was durable before the cut is in a marked block (ZFS's own history: no
    bitmap beside the disk to lose). The replica lives on a spare disk, kept between boots
    as the backup repository would be."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is missing: run make setup")
    boot1, boot2 = tmp_path / "boot1", tmp_path / "boot2"
    boot1.mkdir()
    boot2.mkdir()
    rc = guest.run_in_guest([sys.executable, "-m", "tests.power_cut", "--cbt-start"],
                            timeout=900, spares_dir=tmp_path, cut=cut_when_armed(),
                            keep=("cbt.json",), keep_to=boot1)
    assert rc == guest.KILLED, f"boot 1: the guest was not cut (exit {rc})"
    rc = guest.run_in_guest([sys.executable, "-m", "tests.power_cut", "--cbt-check"],
                            timeout=900, spares_dir=tmp_path,
                            env={"ZFSAGA_CBT_BOOT1": (boot1 / "cbt.json").read_text()},
                            keep=("result.json",), keep_to=boot2)
    assert (boot2 / "result.json").exists(), f"boot 2: no result (exit {rc})"
    result = json.loads((boot2 / "result.json").read_text())
    summary_line(request, f"CBT after a power cut: {result['writes_counted']} durable writes "
                          f"in {result['blocks_written']} blocks (the interrupted one "
                          f"{'landed' if result['interrupted_write_landed'] else 'did not land'}"
                          f"), {result['blocks_marked']} blocks marked, replica sha256 "
                          f"{result['replica'][:16]}, S2's {result['snapshot'][:16]}")
    assert result["problems"] == [], result
    assert rc == 0


def soak(n: int, seed: int) -> int:
    """`make powercut-soak`: n cuts at random moments of random sagas."""
    from tests.saga_scenarios import SCENARIOS

    rng = random.Random(seed)
    specs = [f"{kind}:{i}" for kind, cases in SCENARIOS.items() for i in range(len(cases))]
    # A random moment inside the saga (a fraction of its reference run's time): a cut after
    # it ended would not count.
    cuts = [(rng.choice(specs), f"within:{rng.uniform(0.02, 0.98):.2f}") for _ in range(n)]
    workdir = Path(os.environ.get("TMPDIR", "/tmp"), f"zfsaga-soak-{os.getpid()}")
    workdir.mkdir()
    try:
        runner = run_cuts(workdir, cuts)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for r in runner.results:
        if r["problems"]:
            print(f"  {r['scenario']} cut {r['cut_at']}: {r['problems']}")
    print(report(runner) + f" [seed {seed}]")
    return 1 if any(r["problems"] for r in runner.results) else 0


if __name__ == "__main__":
    sys.exit(soak(int(sys.argv[1]) if len(sys.argv) > 1 else 10,
                  int(sys.argv[2]) if len(sys.argv) > 2 else 1))
