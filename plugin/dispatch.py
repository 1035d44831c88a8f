"""The one dispatcher behind every installed entry point, as xapi-storage-script calls them
(xen-api's ocaml/xapi-storage-script): `<Interface.method> --json`, one JSON object of named arguments on
stdin; on success exit 0 with exactly the result's JSON on stdout; on failure a non-zero exit
with the error JSON on stdout. Nothing else ever reaches stdout: logs go to stderr and syslog.

Arguments and results are checked against the IDL (plugin/idl.py) both ways. Verb modules are
imported by name, only the one called: a read-only verb loads no engine, no loguru."""
from __future__ import annotations

import json
import os
import sys

from zfsaga.plugin import idl
from zfsaga.plugin.errors import InvalidArgument, SmapiError, Unimplemented, translate
# The tables live apart so that a verb (Plugin.query) can read them without importing the
# dispatcher that imports it; named here too for the callers that read them here.
from zfsaga.plugin.verbs import (DATAPATH_IMPLEMENTATIONS, IMPLEMENTATIONS,  # noqa: F401
                                 PLUGIN_TYPE)

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import IO, Any

#: Stdin is one JSON object of a few fields; anything near this is not a call from xapi.
MAX_INPUT = 1 << 20


def table(where: str | None) -> dict[str, str]:
    """The verbs of the plugin directory an entry point was run from: datapath/<scheme>/ or
    volume/org.xen.xapi.storage.<type>/."""
    if where and os.path.basename(os.path.dirname(os.path.normpath(where))) == "datapath":
        return DATAPATH_IMPLEMENTATIONS
    return IMPLEMENTATIONS


def canonical(verb: str, verbs: dict[str, str] | None = None) -> str:
    """The IDL's spelling of a verb name: the daemon looks scripts up case-insensitively, and
    `Plugin.Query` is the conventional file name of `Plugin.query`."""
    folded = {name.lower(): name for name in (verbs or IMPLEMENTATIONS)}
    name = folded.get(verb.lower())
    if name is None:
        raise Unimplemented(f"{verb} is not implemented by zfsaga")
    return name


def read_arguments(stdin: IO[str] | None, verb: str) -> dict[str, Any]:
    """The call's named arguments, type-checked against the verb's IDL entry. Stdin is read as
    bytes and must be strict UTF-8 JSON: no NaN or Infinity, no key twice, no lone surrogate
    (a string ZFS could not store); anything else is Invalid_argument before the verb runs."""
    if stdin is None:  # fd 0 closed: Python gives no stdin at all
        raise InvalidArgument(f"{verb}: no arguments: stdin is closed")
    raw = getattr(stdin, "buffer", None)
    try:
        data = (raw or stdin).read(MAX_INPUT + 1)
    except (OSError, ValueError) as exc:  # a closed or unreadable descriptor
        raise InvalidArgument(f"{verb}: stdin cannot be read ({exc})") from None
    if len(data) > MAX_INPUT:
        raise InvalidArgument(f"{verb}: the arguments exceed {MAX_INPUT} bytes")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"{verb}: the arguments on stdin are not UTF-8 "
                                  f"(byte {exc.start}: {exc.reason})") from None
    try:
        args = json.loads(data, parse_constant=_no_constant, object_pairs_hook=_no_twice)
    except RecursionError:
        raise InvalidArgument(f"{verb}: the arguments on stdin are nested too deeply") from None
    except ValueError as exc:
        raise InvalidArgument(f"{verb}: the arguments on stdin are not JSON ({exc})") from None
    _check_text(args, verb)
    fields, _ = idl.VERBS[verb]
    try:
        idl.check_fields(args, {"dbg": idl.STR, **fields}, "arguments", extra_ok=False)
    except idl.TypeMismatch as exc:
        raise InvalidArgument(f"{verb}: {exc}") from None
    return args


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _no_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are each given once: with a key twice, which value was meant?"""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} is given twice")
        out[key] = value
    return out


def _check_text(args: Any, verb: str) -> None:
    """Invalid_argument for any key or string holding a lone surrogate (JSON's "\\ud800"):
    not text, and no property can hold it. A loop, not recursion: the depth is the caller's."""
    todo = [args]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArgument(f"{verb}: the arguments hold a lone surrogate "
                                      f"({item!r}), which is not text") from None


def call(verb: str, args: dict[str, Any], verbs: dict[str, str] | None = None) -> Any:
    module, function = (verbs or IMPLEMENTATIONS)[verb].split(":")
    # __import__, not importlib: the one verb module, without importlib's own import cost
    impl = getattr(__import__(f"zfsaga.plugin.{module}", fromlist=[function]), function)
    result = impl(**args)
    try:
        idl.check(result, idl.VERBS[verb][1], "result")
    except idl.TypeMismatch as exc:  # zfsaga's own bug: say so rather than confuse xapi
        raise SmapiError(f"{verb} built a result of the wrong type: {exc}") from None
    return result


def main(verb: str, argv: list[str], stdin: IO[str] = sys.stdin,
         stdout: IO[str] = sys.stdout, where: str | None = None) -> int:
    """Run one verb (`where`: the plugin directory it was run from), answering within the
    call deadline (plugin/deadline.py); returns the exit status."""
    from zfsaga.plugin.deadline import run_bounded

    return run_bounded(verb, lambda out: answer(verb, argv, stdin, out, where), stdout,
                       sys.stderr)


def answer(verb: str, argv: list[str], stdin: IO[str], stdout: IO[str],
           where: str | None) -> int:
    """The call itself: its JSON result or error on `stdout`, and the exit status."""
    try:
        if argv != ["--json"]:
            raise Unimplemented(f"{verb}: zfsaga takes its arguments as `--json` on stdin "
                                f"(positional arguments are not supported)")
        verbs = table(where)
        name = canonical(verb, verbs)
        result = call(name, read_arguments(stdin, name), verbs)
    except Exception as exc:  # every failure leaves as the error JSON, never a traceback
        error = translate(exc)
        if not isinstance(exc, SmapiError):
            _log_unexpected(verb, exc)
        stdout.write(json.dumps(error.to_json()) + "\n")
        stdout.flush()
        return 1
    stdout.write(json.dumps(result) + "\n")
    stdout.flush()
    return 0


def _log_unexpected(verb: str, exc: BaseException) -> None:
    import traceback

    sys.stderr.write(f"zfsaga: {verb} failed unexpectedly: "
                     f"{''.join(traceback.format_exception_only(type(exc), exc)).strip()}\n")
