"""The one dispatcher behind every installed entry point, as xapi-storage-script calls them
(smapiv3.md 1.4-1.7): `<Interface.method> --json`, one JSON object of named arguments on
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

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import IO, Any

#: Interface.method -> "module:function" under zfsaga.plugin.
IMPLEMENTATIONS = {
    "Plugin.query": "query:query",
    "Plugin.diagnostics": "query:diagnostics",
    "SR.create": "sr:create", "SR.probe": "sr:probe", "SR.attach": "sr:attach", "SR.detach": "sr:detach",
    "SR.destroy": "sr:destroy",
    "SR.stat": "sr:stat", "SR.ls": "sr:ls", "SR.set_name": "sr:set_name",
    "SR.set_description": "sr:set_description",
    "Volume.create": "volume:create", "Volume.stat": "volume:stat",
    "Volume.destroy": "volume:destroy", "Volume.resize": "volume:resize",
    "Volume.snapshot": "volume:snapshot", "Volume.clone": "volume:clone",
    "Volume.revert": "volume:revert",
    "Volume.set": "volume:set_key",
    "Volume.unset": "volume:unset_key", "Volume.set_name": "volume:set_name",
    "Volume.set_description": "volume:set_description",
}
#: The same, for the entry points under datapath/<scheme>/ (their own Plugin.query).
DATAPATH_IMPLEMENTATIONS = {
    "Plugin.query": "datapath:query", "Datapath.attach": "datapath:attach",
    "Datapath.activate": "datapath:activate",
    "Datapath.activate_readonly": "datapath:activate_readonly",
    "Datapath.deactivate": "datapath:deactivate", "Datapath.detach": "datapath:detach",
}
#: The plugin's type: the directory org.xen.xapi.storage.<TYPE>, and Plugin.query's `plugin`.
PLUGIN_TYPE = "zfsaga"
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


def read_arguments(stdin: IO[str], verb: str) -> dict[str, Any]:
    """The call's named arguments, type-checked against the verb's IDL entry."""
    text = stdin.read(MAX_INPUT + 1)
    if len(text) > MAX_INPUT:
        raise InvalidArgument(f"{verb}: the arguments exceed {MAX_INPUT} bytes")
    try:
        args = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"{verb}: the arguments on stdin are not JSON ({exc})") from None
    fields, _ = idl.VERBS[verb]
    try:
        idl.check_fields(args, {"dbg": idl.STR, **fields}, "arguments", extra_ok=False)
    except idl.TypeMismatch as exc:
        raise InvalidArgument(f"{verb}: {exc}") from None
    return args


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
