"""The one interface to ZFS that every step uses, with two backends: real (pyzfs + zfs CLI) and
the in-memory model. `Zfs` is the primitives (primitives.py: one checked call each, through
the layer's one boundary, where the guard and the hooks sit) and, here, the composites built on
them: calls that read before they act (a clone that keeps a thick volume thick, a resize that
moves its reservation along, a witness never lowered) and the reads that answer several
primitives' questions in one ZFS call (`describe*`, `tree_user_props`). The arguments'
checks are checks.py's; which settings an SR offers is policy, above the layer (steps/srs.py).
"""
from __future__ import annotations

from abc import abstractmethod

from zfsaga.steps.zfs import checks, names
from zfsaga.steps.zfs.errors import InvalidName, InvalidValue
# The layer's names, importable from here as the steps and backends always have:
from zfsaga.steps.zfs.checks import (DEFAULT_VOLBLOCKSIZE, MAX_USER_VALUE,  # noqa: F401
                                     MAX_VOLSIZE, NATIVE_PROPS, check_props, check_size,
                                     is_user_prop)
from zfsaga.steps.zfs.primitives import Prop, ZfsHooks, ZfsPrimitives  # noqa: F401

TYPE_CHECKING = False  # typing only for annotations: see README, 'A lean start'
if TYPE_CHECKING:
    from typing import Iterable


class Zfs(ZfsPrimitives):
    """Every ZFS action and query the plugin needs: the primitives, and the composites here.
    Public methods validate and go through `_call`; backends implement the underscored ones."""

    #: Whether the volumes hold their data (real ZFS): a send stream, and what changed between
    #: two points, exists only then (the model keeps names and properties, no blocks).
    holds_data = True

    # -- changes that read first ---------------------------------------------------------------
    def clone(self, snapshot: str, target: str, props: dict[str, str] | None = None, *,
              reserve: bool = False) -> None:
        """Clone a snapshot into a new dataset, tagged atomically. A clone starts sparse;
        `reserve` reserves its whole size in the same call (a thick volume stays thick)."""
        names.check_snapshot(snapshot)
        names.check_dataset(target)
        p = checks.check_props(props)
        reservation = None
        if reserve and self.exists(snapshot):  # a missing one fails in the clone itself
            size = self.get_props(snapshot, ["volsize"])["volsize"].value
            if size is None:
                raise InvalidValue(snapshot, "only a volume's snapshot can be cloned reserved")
            reservation = int(size)
        # lzc_clone (2.1.11) accepts a zvol as the parent and makes a dataset that no listing
        # shows: a leak nobody could find. The zfs CLI checks this; the layer must too.
        parent = names.parent_of(target)
        if parent is not None:
            kind = self.get_props(parent, ["type"])["type"].value if self.exists(parent) else None
            if kind not in (None, "filesystem"):
                raise InvalidName(target, f"parent {parent} is a {kind}, not a filesystem")
        self._call("clone", target, True,
                   lambda: self._clone(snapshot, target, p, reservation))

    def set_witness(self, name: str, prop: str, generation: int) -> None:
        """Raise the user property that witnesses the journal (steps/srs.py, JOURNAL_GEN) to
        `generation`, never lower it: two sagas of one SR (creates, side by side) write theirs
        in either order, and a witness gone back would hide the loss of the newer one's
        records. An op of its own name, so faults aimed at a step's property writes, and the
        labels of crash points, stay the steps' own."""
        names.check_any(name)
        checks.check_props({prop: str(generation)})
        self._call("set_witness", name, True,
                   lambda: self._raise_counter(name, prop, generation))

    def _raise_counter(self, name: str, prop: str, value: int) -> None:
        """Set the numeric user property `prop` to `value` unless it holds a larger number:
        read, then set. Each backend overrides it to make the two one step where it can (the
        model, in one call under its lock; the real backend, one channel program)."""
        now = self.get_props(name, [prop])[prop].local
        if now is not None and now.isdigit() and int(now) >= value:
            return
        self._set_props(name, {prop: str(value)})

    def set_volsize(self, name: str, size: int) -> None:
        """Resize a zvol. ZFS allows shrinking; refusing a shrink is the caller's policy.
        A reserved (thick) zvol keeps its whole size reserved: ZFS moves refreservation along
        with volsize only when it holds ZFS's own computed value, which lzc_create never sets,
        so both are set together, in one call."""
        checks.check_size(size)
        names.check_dataset(name)
        props = {"volsize": str(size)}
        if self.get_props(name, ["refreservation"])["refreservation"].value not in (None, "0"):
            props["refreservation"] = str(size)
        self._call("set_props", name, True, lambda: self._set_props(name, props))

    def reserve(self, name: str) -> None:
        """Reserve a volume's whole size (refreservation = volsize): a thick volume's clone
        that a cut-off process left without its reservation. NoSpace when the pool cannot."""
        names.check_dataset(name)
        size = self.get_props(name, ["volsize"])["volsize"].value
        if size is None:
            raise InvalidValue(name, "only a volume can be reserved")
        # An op of its own name (a set of refreservation underneath), so a fault or a crash
        # point can aim at the reserve apart from the steps' other property writes.
        self._call("reserve", name, True,
                   lambda: self._set_props(name, {"refreservation": size}))

    # -- several questions, one ZFS call ---------------------------------------------------------
    def describe(self, name: str, props: Iterable[str]) -> tuple[dict[str, Prop],
                                                                dict[str, str]]:
        """Chosen native properties and every local user property of one object, in one call
        (what `get_props` and `user_props` give, for the price of one: Volume.stat runs before
        every datapath step)."""
        names.check_any(name)
        wanted = checks.check_readable(props)
        return self._call("describe", name, False, lambda: self._describe(name, wanted))

    def describe_many(self, objects: list[str], props: Iterable[str]
                      ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]:
        """`describe` of several objects in one call; those that do not exist are left out
        (an SR and one of its volumes: Volume.stat reads both for the price of one)."""
        for name in objects:
            names.check_any(name)
        wanted = checks.check_readable(props)
        return self._call("describe_many", objects[0], False,
                          lambda: self._describe_many(list(objects), wanted))

    def describe_tree(self, root: str, props: Iterable[str]
                      ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]:
        """`describe` of root and everything below it, in one call (SR.ls)."""
        names.check_dataset(root)
        wanted = checks.check_readable(props)
        return self._call("describe_tree", root, False,
                          lambda: self._describe_tree(root, wanted))

    def tree_user_props(self, root: str) -> dict[str, dict[str, str]]:
        """Every user property set locally on any dataset or snapshot at or below root, in one
        call: name -> {property: value}. Objects with no local user property are absent."""
        names.check_dataset(root)
        return self._call("tree_user_props", root, False, lambda: self._tree_user_props(root))

    # -- what a backend implements for these ---------------------------------------------------
    @abstractmethod
    def _clone(self, snapshot: str, target: str, props: dict[str, str],
               reservation: int | None) -> None: ...
    @abstractmethod
    def _describe(self, name: str, props: list[str]) -> tuple[dict[str, Prop],
                                                              dict[str, str]]: ...
    @abstractmethod
    def _describe_many(self, objects: list[str], props: list[str]
                       ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]: ...
    @abstractmethod
    def _describe_tree(self, root: str, props: list[str]
                       ) -> dict[str, tuple[dict[str, Prop], dict[str, str]]]: ...
    @abstractmethod
    def _tree_user_props(self, root: str) -> dict[str, dict[str, str]]: ...
