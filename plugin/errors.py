"""SMAPIv3 errors, by meaning, and their JSON form (as xapi-storage-script parses it): `code` is
SR_BACKEND_FAILURE unless a specific XenAPI code fits, `params` starts with the IDL's error name
(Volume_does_not_exist, SR_does_not_exist, Sr_not_attached, Unimplemented, ...) and goes on with
a message an admin can act on. The translation of zfsaga's own errors happens here, once."""
from __future__ import annotations

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Any


BACKEND_FAILURE = "SR_BACKEND_FAILURE"


class SmapiError(Exception):
    """An error xapi is told about. Subclasses name the IDL's error variants."""

    name = "Internal_error"
    code = BACKEND_FAILURE

    def __init__(self, message: str, *more: str) -> None:
        super().__init__(message)
        self.params = [self.name, message, *more]

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "params": self.params,
                "backtrace": {"error": f"{self.name}: {self.params[1]}", "files": [],
                              "lines": []}}


class InvalidArgument(SmapiError):
    """The call's JSON, its fields or their types are not what the verb takes."""

    name = "Invalid_argument"


class Unimplemented(SmapiError):
    name = "Unimplemented"


class VolumeDoesNotExist(SmapiError):
    name = "Volume_does_not_exist"


class SrDoesNotExist(SmapiError):
    name = "SR_does_not_exist"


class SrNotAttached(SmapiError):
    name = "Sr_not_attached"


class Busy(SmapiError):
    """A bounded wait ran out (a lock, a device link); the message says what it waited for."""

    name = "Busy"


class NoSpace(SmapiError):
    """The SR cannot hold what was asked (a thick volume's whole size)."""

    name = "No_space"


class InternalError(SmapiError):
    name = "Internal_error"


def require_effect(outcome: Any, what: str, sr: str | None = None) -> None:
    """Raise unless the verb's effect took place. A saga stuck after its pivot did what was
    asked (a revert's VDI holds the snapshot's data, a destroyed volume is gone from SR.ls,
    a clone exists): telling xapi it did not would be the opposite of the truth. Only its
    cleanup is left (a hold, a retired head, a base snapshot): logged here, listed by
    `zfsaga list`, finished by `zfsaga resume` or the SR's next saga. `sr`: the SR whose
    journal holds the saga (None: the host's, for the pool sagas)."""
    if outcome.status == "succeeded":
        return
    if outcome.status == "stuck" and getattr(outcome, "effect_taken", False):
        from zfsaga.log import get_logger

        where = f"--sr {sr}" if sr else "--host"
        get_logger(saga_id=outcome.saga_id, verb=what).warning(
            "{} took effect, but saga {} is stuck in its cleanup ({}): it is finished by the "
            "next saga of this SR, or now by `zfsaga {} resume {} --reason ... --yes`",
            what, outcome.saga_id, outcome.error, where, outcome.saga_id)
        return
    raise saga_failed(outcome, what)


def saga_failed(outcome: Any, what: str) -> SmapiError:
    """A verb's saga ended without doing what was asked: compensated (nothing changed) or
    stuck (an operator's `zfsaga show <id>` tells the rest). A step that failed for want of
    space is xapi's No_space: the admin frees space or picks another SR, nothing to debug
    (the engine words a step's failure "<step>: <ErrorType>: <message>")."""
    if ": NoSpace: " in (outcome.error or ""):
        return NoSpace(f"{what} did not happen, the pool is out of space (saga "
                       f"{outcome.saga_id} {outcome.status}): {outcome.error}")
    return SmapiError(f"{what} did not happen (saga {outcome.saga_id} {outcome.status}): "
                      f"{outcome.error}")


def translate(exc: BaseException) -> SmapiError:
    """The SMAPIv3 error for any exception a verb raised (zfsaga's typed errors by meaning;
    anything unexpected is an Internal_error naming its type, never a traceback on stdout)."""
    if isinstance(exc, SmapiError):
        return exc
    kind = type(exc).__name__
    if kind in ("InvalidName", "InvalidValue"):
        return InvalidArgument(str(exc))
    if kind in ("LockBusy", "SagaBlocked", "ResourceTaken"):
        return Busy(str(exc))
    if kind == "NoSpace":
        return NoSpace(str(exc))
    return InternalError(f"{kind}: {exc}")
