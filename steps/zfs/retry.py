"""Bounded retries of transient ZFS errors (busy), with exponential backoff and jitter.

ZFS reports a dataset busy while something briefly holds it: udev probing a zvol after a
write, a closing tapdisk, a concurrent `zfs list`. Those pass within a second or two, so
they are retried here and only here; every other error is permanent and surfaces at once.
"""
from __future__ import annotations

from typing import Callable, TypeVar

from zfsaga.steps.zfs.errors import ZfsError

T = TypeVar("T")

#: Total retry budget: 8 attempts, waits 0.1 s doubling to at most 2 s, plus up to 0.2 s jitter.
ATTEMPTS = 8


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, ZfsError) and exc.transient


def retry_transient(fn: Callable[[], T], *, attempts: int = ATTEMPTS,
                    on_retry: Callable[[BaseException, int], None] | None = None,
                    sleep: Callable[[float], None] | None = None) -> T:
    """Call fn, retrying while it raises a transient ZfsError; re-raise the last one when the
    budget is spent. `sleep` is injectable so tests do not wait."""
    import tenacity  # lazy: read-only entry points never pay for it

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            on_retry(state.outcome.exception(), state.attempt_number)

    kwargs = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_transient),
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=0.1, max=2) + tenacity.wait_random(0, 0.2),
        before_sleep=before_sleep,
        reraise=True,
        **kwargs,
    )
    return retrying(fn)
