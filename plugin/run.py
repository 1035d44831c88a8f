"""How a verb runs its saga, in one place: the saga started through the engine it is handed,
then its outcome turned into the verb's answer. Success, or a saga stuck only in its cleanup
after its effect took place (logged, plugin/errors.py require_effect), returns the outcome
(what the saga made is in its facts); anything else raises the SMAPIv3 error that says so.
A saga that makes something for its caller's read answers what the read returned."""
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


def read_through_saga(what: str, start: Callable[..., Any], runner: Any, *args: Any,
                      read: Callable[[dict], Any], sr: str | None = None) -> Any:
    """Run a saga that makes something for its caller's read (sagas/contract.py READ) and
    return what `read` returned. A read that fails is the verb's answer when the saga took
    back what it made for it; when it could not (stuck undoing it: the SR's next saga waits for
    an operator), the answer says both, and how to see the rest."""
    from zfsaga.plugin.errors import InternalError, SmapiError

    answer: list[Any] = []
    failed: list[Exception] = []

    def reading(facts: dict) -> None:
        try:
            answer.append(read(facts))
        except Exception as exc:
            failed.append(exc)
            raise

    outcome = start(runner, *args, reading)
    if failed and outcome.status == "compensated":
        raise failed[0]
    if failed:
        where = f"--sr {sr}" if sr else "--host"
        raise SmapiError(f"{what} failed ({type(failed[0]).__name__}: {failed[0]}), and saga "
                         f"{outcome.saga_id} could not take back what it made for it "
                         f"({outcome.status}: {outcome.error}); `zfsaga {where} show "
                         f"{outcome.saga_id}` says the rest")
    require_effect(outcome, what, sr)
    if not answer:  # the saga's effect is the read: it cannot have succeeded without one
        raise InternalError(f"{what}: saga {outcome.saga_id} ended without its read")
    return answer[0]


def host_engine(backend: Any) -> Any:
    """The saga engine over the host's journal (the pool sagas)."""
    from zfsaga.location import host_state_dir
    from zfsaga.plugin.deadline import lock_wait
    from zfsaga.sagas.runner import open_engine

    return open_engine(backend, host_state_dir(), lock_wait=lock_wait())
