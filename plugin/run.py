"""How a verb runs its saga, in one place: the saga started through the engine it is handed,
then its outcome turned into the verb's answer. Success, or a saga stuck only in its cleanup
after its effect took place (logged, plugin/errors.py require_effect), returns the outcome
(what the saga made is in its facts); anything else raises the SMAPIv3 error that says so."""
from __future__ import annotations

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Any, Callable

from zfsaga.plugin.errors import require_effect


def run_saga(what: str, start: Callable[..., Any], runner: Any, *args: Any,
             sr: str | None = None, **kwargs: Any) -> Any:
    """Run the saga `start` (a saga module's) through `runner` with `args`: its outcome when
    the verb's effect took place. `what` names the request in errors ("Volume.destroy of
    <key>"); `sr`: the SR whose journal holds the saga (None: the host's, a pool saga)."""
    outcome = start(runner, *args, **kwargs)
    require_effect(outcome, what, sr)
    return outcome


def host_engine(backend: Any) -> Any:
    """The saga engine over the host's journal (the pool sagas)."""
    from zfsaga.location import host_state_dir
    from zfsaga.plugin.deadline import lock_wait
    from zfsaga.sagas.runner import open_engine

    return open_engine(backend, host_state_dir(), lock_wait=lock_wait())
