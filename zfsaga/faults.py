"""Fault injection for CI: one switch, the ZFSAGA_FAULTS environment variable (or a file named by
ZFSAGA_FAULTS_FILE), read once per process. Its value is a list of rules separated by commas:

    crash@7                        die at the 7th boundary this process reaches
    crash@zfs:before:promote       die at the first boundary with this label (prefix match)
    fail:promote:transient:2       the next 2 promote calls fail with a transient (busy) error
    fail:clone:permanent           every clone call fails with a permanent error
    fail:destroy:after-effect      destroy takes effect, then reports an error (once)
    pause@zfs:after:snapshot       at the first boundary with this label, create
                                   $ZFSAGA_PAUSE_DIR/paused and wait (at most 600 s) for
                                   $ZFSAGA_PAUSE_DIR/go: a test acts on the world mid-saga
                                   (fails a disk, fills a pool) while the process waits

Boundaries are named where durable effects meet: `journal:before:<event>`, `journal:after:<event>`,
`zfs:before:<op>`, `zfs:after:<op>`, and `comp:<step>:inside` within a compensation. "Die" means
`os._exit(137)`: no finally blocks, no atexit, like kill -9. Tests that run sagas in-process use
mode "raise" instead, which raises SimulatedCrash (a BaseException nothing in zfsaga catches).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from zfsaga.steps.zfs.errors import Busy, ZfsFailure
from zfsaga.steps.zfs.interface import ZfsHooks

CRASH_EXIT = 137


class SimulatedCrash(BaseException):
    """The in-process stand-in for kill -9 (BaseException: `except Exception` cannot eat it)."""


@dataclass
class FailRule:
    op: str
    how: str  # transient | permanent | after-effect
    times: int | None  # None: every call


@dataclass
class Faults:
    """The parsed switch, plus what this process has seen so far."""

    crash_at: int | None = None
    crash_label: str | None = None
    pause_label: str | None = None
    fail_rules: list[FailRule] = field(default_factory=list)
    mode: str = "exit"  # exit | raise
    seen: int = 0
    labels: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, spec: str, mode: str = "exit") -> "Faults":
        faults = cls(mode=mode)
        for rule in filter(None, (r.strip() for r in spec.split(","))):
            if rule.startswith("crash@"):
                where = rule[len("crash@"):]
                if where.isdigit():
                    faults.crash_at = int(where)
                else:
                    faults.crash_label = where
            elif rule.startswith("pause@"):
                faults.pause_label = rule[len("pause@"):]
            elif rule.startswith("fail:"):
                parts = rule.split(":")
                if len(parts) not in (3, 4) or parts[2] not in ("transient", "permanent",
                                                                "after-effect"):
                    raise ValueError(f"bad fault rule {rule!r}")
                times = int(parts[3]) if len(parts) == 4 else (1 if parts[2] == "after-effect"
                                                               else None)
                faults.fail_rules.append(FailRule(parts[1], parts[2], times))
            else:
                raise ValueError(f"bad fault rule {rule!r}")
        return faults

    @classmethod
    def from_env(cls) -> "Faults | None":
        spec = os.environ.get("ZFSAGA_FAULTS")
        path = os.environ.get("ZFSAGA_FAULTS_FILE")
        if not spec and path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                spec = f.read()
        return cls.parse(spec) if spec else None

    def boundary(self, label: str) -> None:
        """A point between durable effects: count it, and die here if told to."""
        self.seen += 1
        self.labels.append(label)
        if self.pause_label is not None and label.startswith(self.pause_label):
            self.pause_label = None
            _pause(label)
        if self.seen == self.crash_at or (self.crash_label is not None
                                          and label.startswith(self.crash_label)):
            self.crash_label = None  # a label crashes once per process
            if self.mode == "raise":
                raise SimulatedCrash(label)
            os._exit(CRASH_EXIT)

    def _rule(self, op: str, how: tuple[str, ...]) -> FailRule | None:
        for rule in self.fail_rules:
            if rule.op == op and rule.how in how and (rule.times is None or rule.times > 0):
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return None


def _pause(label: str) -> None:
    import time

    where = os.environ.get("ZFSAGA_PAUSE_DIR", "/tmp")
    with open(os.path.join(where, "paused"), "w", encoding="utf-8") as f:
        f.write(f"{label} {os.getpid()}\n")
    until = time.monotonic() + 600
    while not os.path.exists(os.path.join(where, "go")) and time.monotonic() < until:
        time.sleep(0.05)


class FaultHooks(ZfsHooks):
    """ZfsHooks that put boundaries around every ZFS call and inject the configured failures."""

    def __init__(self, faults: Faults | None) -> None:
        super().__init__()
        self.faults = faults

    def before(self, op: str, name: str, mutating: bool) -> None:
        super().before(op, name, mutating)
        if self.faults is None or not mutating:
            return
        self.faults.boundary(f"zfs:before:{op}")
        rule = self.faults._rule(op, ("transient", "permanent"))
        if rule is not None and rule.how == "transient":
            raise Busy(name, f"injected transient failure of {op}")
        if rule is not None:
            raise ZfsFailure(name, f"injected permanent failure of {op}")

    def after(self, op: str, name: str, mutating: bool) -> None:
        super().after(op, name, mutating)
        if self.faults is None or not mutating:
            return
        if self.faults._rule(op, ("after-effect",)) is not None:
            raise ZfsFailure(name, f"injected failure after {op} took effect")
        self.faults.boundary(f"zfs:after:{op}")
