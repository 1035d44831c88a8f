"""The in-memory model, shared between processes through a file: each call loads the model
under an flock, runs, and saves it if it changed something. Lets tests run many zfsaga
processes (races, kill -9, the CLI) against one model, as they would against one pool."""
from __future__ import annotations

import fcntl
import os
import pickle
from pathlib import Path
from typing import Callable, TypeVar

from zfsaga.steps.zfs.model import ModelZfs
from zfsaga.steps.zfs.interface import ZfsHooks

T = TypeVar("T")
_STATE = ("_objs", "_txg", "_rand", "_health", "_pools", "_exported")


class SharedModelZfs(ModelZfs):
    def __init__(self, path: str | os.PathLike[str], pools: tuple[str, ...] = ("tank",),
                 hooks: ZfsHooks | None = None) -> None:
        super().__init__(pools, hooks)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if not self.path.exists():
                self._save()

    def version(self) -> str:
        return f"model shared through {self.path}"

    def set_pool_health(self, pool: str, state: str) -> None:
        with self._locked():
            self._load()
            super().set_pool_health(pool, state)
            self._save()

    def _locked(self):
        lock_path = self.path.with_suffix(".lock")

        class _Lock:
            def __enter__(inner):
                inner.fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(inner.fd, fcntl.LOCK_EX)

            def __exit__(inner, *exc):
                os.close(inner.fd)

        return _Lock()

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            state = pickle.load(f)
        for key in _STATE:
            setattr(self, key, state[key])

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump({key: getattr(self, key) for key in _STATE}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _call(self, op: str, name: str, mutating: bool, fn: Callable[[], T]) -> T:
        def acted() -> T:
            # Saved before the hooks' `after`: a process that dies there (kill -9 just after a
            # ZFS call returned) leaves the change made, as ZFS would.
            try:
                return fn()
            finally:
                if mutating:
                    self._save()

        with self._locked():
            self._load()
            return super()._call(op, name, mutating, acted)
