"""The slice of the xapi-storage v5 IDL zfsaga implements, as data: each verb's arguments and
result, in a small type language the dispatcher checks both ways. xapi unmarshals results by
type, so a result of the wrong shape would reach an admin as an opaque failure: it is caught
here, in zfsaga's own words, instead.

Types: "str", "int", "bool", "unit" (JSON null), ("list", T), ("dict", T) (string keys),
("option", T), ("struct", {field: T}) where an ("option", T) field may be absent, and
("variant", {tag: T}) written as [tag, payload].
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Any


STR, INT, BOOL, UNIT = "str", "int", "bool", "unit"


def list_of(t: Any) -> tuple:
    return ("list", t)


def dict_of(t: Any) -> tuple:
    return ("dict", t)


def option(t: Any) -> tuple:
    return ("option", t)


def struct(**fields: Any) -> tuple:
    return ("struct", fields)


QUERY_RESULT = struct(plugin=STR, name=STR, description=STR, vendor=STR, copyright=STR,
                      version=STR, required_api_version=STR, features=list_of(STR),
                      configuration=dict_of(STR), required_cluster_stack=list_of(STR))

#: xapi's `changed_blocks`: the block size in bytes and the base64 bitmap (plugin/changed.py).
CHANGED_BLOCKS = struct(granularity=INT, bitmap=STR)
HEALTH = ("variant", {"Healthy": STR, "Recovering": STR, "Unreachable": STR,
                      "Unavailable": STR})
SR_STAT = struct(sr=STR, name=STR, uuid=option(STR), description=STR, free_space=INT,
                 total_space=INT, datasources=list_of(STR), clustered=BOOL, health=HEALTH)
VOLUME = struct(key=STR, uuid=option(STR), name=STR, description=STR, read_write=BOOL,
                sharable=BOOL, virtual_size=INT, physical_utilisation=INT, uri=list_of(STR),
                keys=dict_of(STR), volume_type=option(("variant", {"Data": UNIT,
                                                                   "CBT_Metadata": UNIT,
                                                                   "Data_and_CBT_Metadata": UNIT})),
                cbt_enabled=option(BOOL))
CONFIG = dict_of(STR)
PROBE_RESULT = struct(configuration=CONFIG, complete=BOOL, sr=option(SR_STAT),
                      extra_info=dict_of(STR))

IMPLEMENTATION = ("variant", {"XenDisk": struct(params=STR, extra=dict_of(STR),
                                                backend_type=STR),
                               "BlockDevice": struct(path=STR), "File": struct(path=STR),
                               "Nbd": struct(uri=STR)})
BACKEND = struct(implementations=list_of(IMPLEMENTATION))
DATAPATH_ARGS = {"uri": STR, "domain": STR}

#: Interface.method -> (arguments besides dbg, result type). Only implemented verbs are here,
#: and only they get an executable at install (xapi derives features from which exist).
VERBS: dict[str, tuple[dict[str, Any], Any]] = {
    "Plugin.query": ({}, QUERY_RESULT),
    "Plugin.diagnostics": ({}, STR),
    "SR.create": ({"uuid": STR, "configuration": CONFIG, "name": STR, "description": STR},
                  CONFIG),
    "SR.attach": ({"configuration": CONFIG}, STR),
    "SR.probe": ({"configuration": CONFIG}, list_of(PROBE_RESULT)),
    "SR.detach": ({"sr": STR}, UNIT),
    "SR.destroy": ({"sr": STR}, UNIT),
    "SR.stat": ({"sr": STR}, SR_STAT),
    "SR.ls": ({"sr": STR}, list_of(VOLUME)),
    "SR.set_name": ({"sr": STR, "new_name": STR}, UNIT),
    "SR.set_description": ({"sr": STR, "new_description": STR}, UNIT),
    "Volume.create": ({"sr": STR, "name": STR, "description": STR, "size": INT,
                       "sharable": BOOL}, VOLUME),
    "Volume.stat": ({"sr": STR, "key": STR}, VOLUME),
    "Volume.destroy": ({"sr": STR, "key": STR}, UNIT),
    "Volume.resize": ({"sr": STR, "key": STR, "new_size": INT}, UNIT),
    "Volume.snapshot": ({"sr": STR, "key": STR}, VOLUME),
    "Datapath.attach": (DATAPATH_ARGS, BACKEND),
    "Datapath.activate": (DATAPATH_ARGS, UNIT),
    "Datapath.activate_readonly": (DATAPATH_ARGS, UNIT),
    "Datapath.deactivate": (DATAPATH_ARGS, UNIT),
    "Datapath.detach": (DATAPATH_ARGS, UNIT),
    "Volume.clone": ({"sr": STR, "key": STR}, VOLUME),
    "Volume.revert": ({"sr": STR, "snapshot": STR, "key": STR}, UNIT),
    "Volume.set": ({"sr": STR, "key": STR, "k": STR, "v": STR}, UNIT),
    "Volume.unset": ({"sr": STR, "key": STR, "k": STR}, UNIT),
    "Volume.enable_cbt": ({"sr": STR, "key": STR}, UNIT),
    "Volume.disable_cbt": ({"sr": STR, "key": STR}, UNIT),
    "Volume.data_destroy": ({"sr": STR, "key": STR}, UNIT),
    "Volume.list_changed_blocks": ({"sr": STR, "key": STR, "key2": STR, "offset": INT,
                                    "length": INT}, CHANGED_BLOCKS),
    "Volume.set_name": ({"sr": STR, "key": STR, "new_name": STR}, UNIT),
    "Volume.set_description": ({"sr": STR, "key": STR, "new_description": STR}, UNIT),
}


class TypeMismatch(ValueError):
    """A value that does not have the IDL's type; `path` says where."""

    def __init__(self, path: str, expected: str, got: Any) -> None:
        shown = repr(got)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        super().__init__(f"{path}: expected {expected}, got {shown}")


def check(value: Any, t: Any, path: str) -> None:
    """Raise TypeMismatch unless value has type t (bool is not an int; an int64 fits 64 bits)."""
    if t == STR:
        if not isinstance(value, str):
            raise TypeMismatch(path, "a string", value)
    elif t == INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeMismatch(path, "an integer", value)
        if not -(2**63) <= value < 2**63:
            raise TypeMismatch(path, "a 64-bit integer", value)
    elif t == BOOL:
        if not isinstance(value, bool):
            raise TypeMismatch(path, "true or false", value)
    elif t == UNIT:
        if value is not None:
            raise TypeMismatch(path, "null", value)
    elif t[0] == "list":
        if not isinstance(value, list):
            raise TypeMismatch(path, "a list", value)
        for i, item in enumerate(value):
            check(item, t[1], f"{path}[{i}]")
    elif t[0] == "dict":
        if not isinstance(value, dict):
            raise TypeMismatch(path, "an object", value)
        for key, item in value.items():
            check(key, STR, f"{path} key")
            check(item, t[1], f"{path}[{key!r}]")
    elif t[0] == "option":
        if value is not None:
            check(value, t[1], path)
    elif t[0] == "struct":
        check_fields(value, t[1], path, extra_ok=False)
    elif t[0] == "variant":
        if not (isinstance(value, list) and len(value) == 2 and value[0] in t[1]):
            raise TypeMismatch(path, f"one of {sorted(t[1])} as [tag, payload]", value)
        check(value[1], t[1][value[0]], f"{path}[{value[0]}]")
    else:  # pragma: no cover - a mistake in the table above
        raise AssertionError(f"unknown IDL type {t!r}")


def check_fields(value: Any, fields: dict[str, Any], path: str, *, extra_ok: bool) -> None:
    """A JSON object with exactly these fields (option fields may be absent; with extra_ok,
    unknown fields are tolerated)."""
    if not isinstance(value, dict):
        raise TypeMismatch(path, "an object", value)
    for name, t in fields.items():
        if name not in value:
            if isinstance(t, tuple) and t[0] == "option":
                continue
            raise TypeMismatch(f"{path}.{name}", "a value (it is required)", None)
        check(value[name], t, f"{path}.{name}")
    if not extra_ok:
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise TypeMismatch(f"{path}.{unknown[0]}", "no such field", value[unknown[0]])
