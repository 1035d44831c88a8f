"""The engine over a journal, built in one place: a verb's over its SR's journal
(plugin/context.py), a pool saga's over the host's (plugin/pools.py), SR.create's over the
journal its SR is born with, an operator's (zfsaga/cli.py). The journal is `journal.db` in the
state directory, beside the directory of lock files."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zfsaga.sagas.engine import Engine
from zfsaga.state.journal import Journal
from zfsaga.steps.zfs.interface import Zfs


def open_engine(zfs: Zfs, state_dir: str | os.PathLike[str], **options: Any) -> Engine:
    """The engine over the journal of `state_dir`; `options` are Engine's (lock_wait, actor,
    ...)."""
    state = Path(state_dir)
    return Engine(zfs, Journal(state / "journal.db"), state, **options)
