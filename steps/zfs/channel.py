"""Property reads and user-property writes inside the calling process, through ZFS channel
programs (Lua run by the kernel, one ioctl through pyzfs), for a process that has loaded pyzfs
anyway: one that mutates, or a warm server's child (plugin/server.py preloads pyzfs).

Why: a `zfs` process costs about 0.5 s in the emulated guest (about 20 ms on a host), a channel
program about 25 ms (2 ms): a saga's reads (its SR, its probes, the result it answers with)
were most of a mutating verb's time. A read-only verb run in-process (no server) does not come
here: loading pyzfs costs it more than its one `zfs get` (plugin/context.py reads_in_process).
Served, it does, and so does an SR's whole listing (`describe_tree`, one program walking the
tree): in the guest's speed table of 2026-12-05 (bench/verbs.py, medians of 3 through the
server) Volume.stat 1.6 s against 3.2 s with `zfs get`, Datapath.attach 0.7 s against 1.5 s,
a VM start 4.6 s against 5.5 s; SR.ls and SR.stat alike both ways (2.7 s, 3.8 s: a small SR;
a channel program walking hundreds of datasets was measured slower than `zfs get -r` before,
and one past its memory or instruction limit falls back to it).

What a program answers is what `zfs get -Hp` prints, held to it on real ZFS by
tests/test_zfs_layer.py (every property the layer reads, every kind of object): numbers as
decimal strings (Lua's integers are signed 64-bit, so a guid above 2**63 arrives negative and is
folded back), sources as local / default / inherited / none. `mounted` is the kernel's VFS
state, which a channel program cannot see: reads that ask for it take the CLI.
"""
from __future__ import annotations

from zfsaga.steps.zfs import names
from zfsaga.steps.zfs.errors import NotFound, ZfsFailure, ZfsUnavailable, from_errno
from zfsaga.steps.zfs.checks import DEFAULT_VOLBLOCKSIZE
from zfsaga.steps.zfs.primitives import Prop

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Any

#: Properties only the CLI can read (see the module's docstring).
CLI_ONLY = frozenset({"mounted"})

# Both reads below open with this: argv's first item is the number of properties n, then the
# n properties. describe(name) records one object's values and sources of those properties,
# and its own (local) user properties, in `found`.
_DESCRIBE = b"""
local argv = (...)["argv"]
local n = tonumber(argv[1])
local found = {}
local function describe(name)
  local values, sources, own = {}, {}, {}
  for j = 2, n + 1 do
    local value, source = zfs.get_prop(name, argv[j])
    if value ~= nil then values[argv[j]] = value end
    if source ~= nil then sources[argv[j]] = source end
  end
  for prop, value, source in zfs.list.user_properties(name) do
    if source == name then own[prop] = value end
  end
  found[name] = {values = values, sources = sources, own = own}
end
"""

# argv after the properties: the objects. Answers every object that exists.
_READ = _DESCRIBE + b"""
for i = n + 2, #argv do
  if zfs.exists(argv[i]) then describe(argv[i]) end
end
return found
"""

# argv after the properties: the root. Answers as _READ does, for the root and every
# filesystem, volume and snapshot below it (what `zfs get -r -t filesystem,volume,snapshot`
# prints); nothing when the root does not exist.
_TREE = _DESCRIBE + b"""
local root = argv[n + 2]
local function walk(name)
  describe(name)
  for snap in zfs.list.snapshots(name) do describe(snap) end
  for child in zfs.list.children(name) do walk(child) end
end
if zfs.exists(root) then walk(root) end
return found
"""

# argv: the object, then property, value pairs. Every change is checked before any is made,
# and all are made in the one transaction the program runs in: all or none, like `zfs set`.
_SET_USER = b"""
local argv = (...)["argv"]
local name = argv[1]
if not zfs.exists(name) then return {missing = name} end
for i = 2, #argv, 2 do
  local err = zfs.check.set_prop(name, argv[i], argv[i + 1])
  if err ~= 0 then return {refused = argv[i], errno = err} end
end
for i = 2, #argv, 2 do
  local err = zfs.sync.set_prop(name, argv[i], argv[i + 1])
  if err ~= 0 then return {refused = argv[i], errno = err} end
end
return {}
"""

# argv: the object, a user property, a number. The property is raised to the number unless it
# holds a larger one: read and set in the one transaction the program runs in, so two writers
# never leave the smaller number last.
_RAISE = b"""
local argv = (...)["argv"]
local name, prop, want = argv[1], argv[2], tonumber(argv[3])
if not zfs.exists(name) then return {missing = name} end
local now = zfs.get_prop(name, prop)
if now ~= nil and tonumber(now) ~= nil and tonumber(now) >= want then return {} end
local err = zfs.check.set_prop(name, prop, argv[3])
if err ~= 0 then return {refused = prop, errno = err} end
err = zfs.sync.set_prop(name, prop, argv[3])
if err ~= 0 then return {refused = prop, errno = err} end
return {}
"""


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, int):
        return str(value + (1 << 64) if value < 0 else value)
    return str(value)


def _source(raw: Any, name: str) -> str:
    if raw is None:
        return "none"
    source = _text(raw)
    if source == name:
        return "local"
    if source in ("default", "none"):
        return source
    return "received" if source == "$recvd" else "inherited"


def _prop(prop: str, value: Any, source: Any, name: str) -> Prop:
    got = Prop(None if value is None else _text(value), _source(source, name))
    if prop == "volsize" and got.source == "default":
        # A volume's volsize is always its own (set when it is made), and its snapshots'
        # too; a default one is a filesystem snapshot's, which `zfs get` prints none of.
        return Prop(None, "none")
    if prop == "volblocksize" and got.value is not None:
        # Set once, at creation: `zfs get` names it default when it equals ZFS's default.
        return Prop(got.value, "default" if got.value == str(DEFAULT_VOLBLOCKSIZE) else "none")
    return got


def _run(lzc: Any, pool: str, program: bytes, argv: list[str], name: str, *,
         writes: bool = False) -> dict:
    run = lzc.lzc_channel_program if writes else lzc.lzc_channel_program_nosync
    try:
        return run(pool.encode(), program, params=[a.encode() for a in argv]) or {}
    except lzc.exceptions.PoolNotFound:
        raise NotFound(name, f"pool {pool} does not exist") from None
    except (lzc.exceptions.SuspendedPool, lzc.exceptions.ZFSInitializationFailed) as exc:
        raise ZfsUnavailable(name, f"{type(exc).__name__}: {exc}") from None
    except lzc.exceptions.ZFSError as exc:
        detail = getattr(exc, "details", None)
        raise ZfsFailure(name, f"channel program: {type(exc).__name__}: "
                               f"{_text(detail) if detail else exc}") from None


def _described(found: dict, props: list[str]
               ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]:
    """What _READ or _TREE answered, as `zfs get -Hp` would print it, per object."""
    described: dict[str, tuple[dict[str, Prop], dict[str, str]]] = {}
    for raw_name, got in found.items():
        name = _text(raw_name)
        values = {_text(k): v for k, v in got.get(b"values", {}).items()}
        sources = {_text(k): v for k, v in got.get(b"sources", {}).items()}
        native = {p: _prop(p, values.get(p), sources.get(p), name) for p in props}
        own = {_text(k): _text(v) for k, v in got.get(b"own", {}).items()}
        described[name] = (native, own)
    return described


def describe_tree(lzc: Any, root: str, props: list[str]
                  ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]:
    """`describe` of root and everything below it (SR.ls's one read), in one program; NotFound
    when root does not exist. A tree too large for the program's memory or instruction limit
    fails with ZfsFailure: the caller reads it with `zfs get -r` then."""
    found = _described(_run(lzc, names.pool_of(root), _TREE,
                            [str(len(props)), *props, root], root), props)
    if root not in found:
        raise NotFound(root, "dataset does not exist")
    return found


def describe(lzc: Any, objects: list[str], props: list[str]
             ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]:
    """Per object that exists: the chosen properties (Prop, as `zfs get -Hp`) and every local
    user property. One program per pool the objects are in (in practice one)."""
    by_pool: dict[str, list[str]] = {}
    for name in objects:
        by_pool.setdefault(names.pool_of(name), []).append(name)
    described: dict[str, tuple[dict[str, Prop], dict[str, str]]] = {}
    for pool, names_ in by_pool.items():
        try:
            found = _run(lzc, pool, _READ, [str(len(props)), *props, *names_], names_[0])
        except NotFound:
            continue  # no such pool: none of its objects exist
        described.update(_described(found, props))
    return described


def set_user_props(lzc: Any, name: str, props: dict[str, str]) -> None:
    """Set user properties (only: a channel program cannot set native ones in ZFS 2.1) on one
    dataset or snapshot, all in one transaction."""
    argv = [name, *(part for pair in props.items() for part in pair)]
    _answer(_run(lzc, names.pool_of(name), _SET_USER, argv, name, writes=True), name)


def raise_counter(lzc: Any, name: str, prop: str, value: int) -> None:
    """Raise the numeric user property `prop` of `name` to `value`, never lowering it, in one
    transaction (read and set cannot be split by another writer)."""
    _answer(_run(lzc, names.pool_of(name), _RAISE, [name, prop, str(value)], name,
                 writes=True), name)


def _answer(got: dict, name: str) -> None:
    """Raise what a writing program answered, if it refused."""
    if b"missing" in got:
        raise NotFound(name, "dataset does not exist")
    if b"refused" in got:
        import errno as errno_names

        code = int(got.get(b"errno", 0))
        raise from_errno(code, name, f"cannot set {_text(got[b'refused'])}: "
                                     f"{errno_names.errorcode.get(code, code)}")

