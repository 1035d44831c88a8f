"""The model held to real ZFS: hypothesis draws random operation sequences over a small name
space (so collisions, dependents and promotes happen often), runs each on ModelZfs and on
RealZfs, and requires the same result or the same error class at every step, and the same
normalized tree at the end: names, types, origins, sizes, user properties with their sources,
deferred destroys, hold counts, and object identity (each object is born with a `test:born` tag,
so a promote or rename that moved the wrong object shows up).

On the host the model runs against itself under the same invariants (cheap smoke); in the
guest the real comparison runs. ZFSAGA_DIFF_EXAMPLES sets how many sequences (default 40 on
real ZFS, about 8 minutes of the emulated guest; 300 model-only on the host).
"""
from __future__ import annotations

import os
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DIFF_KEY, POOL, destroy_tree, real_zfs
from zfsaga.steps.zfs.errors import ZfsError
from zfsaga.steps.zfs.model import ModelZfs
from zfsaga.steps.zfs.retry import retry_transient
from zfsaga.steps.zfs.interface import Zfs

MiB = 1 << 20
DATASETS = ["a", "b", "c", "d", "f", "f/a", "f/b"]
SNAPS = ["s1", "s2", "s3"]
USER = "test:p"
BORN = "test:born"
LISTED = ("type", "origin", "volsize", "refreservation", "defer_destroy", "userrefs", USER, BORN)
KINDS = ["create_zvol", "create_filesystem", "snapshot", "clone", "promote", "rename", "destroy",
         "destroy_snapshots", "set_user", "inherit_user", "set_volsize", "hold", "release", "get",
         "exists", "user_props"]
#: Graph-changing operations come up more often than property reads and writes.
WEIGHT = {"snapshot": 3, "clone": 3, "promote": 2, "rename": 2, "create_zvol": 2, "destroy": 2,
          "destroy_snapshots": 2}
ANY_SNAP = [f"{d}@{s}" for d in DATASETS for s in SNAPS]


def _pick(rng: random.Random, likely: list[str], anything: list[str]) -> str:
    """Mostly a name that makes the operation meaningful now, sometimes any name at all (so
    the error paths are compared too)."""
    if likely and rng.random() < 0.85:
        return rng.choice(sorted(likely))
    return rng.choice(anything)


def draw_op(rng: random.Random, tree_now: dict[str, dict]) -> tuple:
    """One operation, its names drawn against the model's current tree."""
    datasets = [n for n in tree_now if "@" not in n]
    snaps = [n for n in tree_now if "@" in n]
    free = [n for n in DATASETS if n not in tree_now]
    clones = [n for n in datasets if tree_now[n]["origin"] is not None]
    applicable = [k for k in KINDS
                  if (k.startswith("create") and free)
                  or (k in ("clone", "hold", "release", "destroy_snapshots") and snaps)
                  or (k == "promote" and clones)
                  or (k not in ("clone", "hold", "release", "destroy_snapshots", "promote")
                      and not k.startswith("create") and datasets)]
    pool = applicable if applicable and rng.random() < 0.9 else KINDS
    kind = rng.choices(pool, [WEIGHT.get(k, 1) for k in pool])[0]
    if kind == "create_zvol":
        return (kind, _pick(rng, free, DATASETS),
                rng.choice([MiB, 2 * MiB, 4 * MiB, MiB + 512]), rng.random() < 0.5)
    if kind == "create_filesystem":
        return (kind, _pick(rng, free, DATASETS))
    if kind == "snapshot":
        count = 2 if rng.random() < 0.3 else 1
        return (kind, [f"{_pick(rng, datasets, DATASETS)}@{rng.choice(SNAPS)}"
                       for _ in range(count)])
    if kind == "clone":
        return (kind, _pick(rng, snaps, ANY_SNAP), _pick(rng, free, DATASETS), rng.random() < 0.3)
    if kind == "rename":
        return (kind, _pick(rng, datasets, DATASETS), _pick(rng, free, DATASETS))
    if kind == "promote":
        return (kind, _pick(rng, clones or datasets, DATASETS))
    if kind in ("destroy", "inherit_user"):
        return (kind, _pick(rng, datasets, DATASETS))
    if kind == "destroy_snapshots":
        count = rng.randint(1, 2)
        return (kind, [_pick(rng, snaps, ANY_SNAP) for _ in range(count)], rng.random() < 0.5)
    if kind == "set_user":
        return (kind, _pick(rng, datasets + snaps, DATASETS + ANY_SNAP),
                rng.choice(["x", "y"]))
    if kind == "set_volsize":
        return (kind, _pick(rng, datasets, DATASETS), rng.choice([2 * MiB, 3 * MiB]))
    if kind in ("hold", "release"):
        return (kind, _pick(rng, snaps, ANY_SNAP), rng.choice(["h1", "h2"]))
    return (kind, _pick(rng, datasets + snaps, DATASETS + ANY_SNAP))


class Failed(str):
    """An error outcome: compares by error class only, shows ZFS's own words when it differs."""

    def __new__(cls, kind: str, detail: str) -> "Failed":
        obj = super().__new__(cls, kind)
        obj.detail = detail
        return obj

    def __repr__(self) -> str:
        return f"{str.__str__(self)}({self.detail!r})"


def apply(z: Zfs, root: str, op: tuple, k: int) -> object:
    """Run op k under root the way steps call ZFS (transient busy errors retried, boundedly);
    return a normalized result or the error's class."""
    return retry_transient(lambda: _apply_once(z, root, op, k), on_retry=_note_retry)


def _note_retry(exc: BaseException, attempt: int) -> None:
    print(f"retrying after transient {exc!r} (attempt {attempt})")


def _apply_once(z: Zfs, root: str, op: tuple, k: int) -> object:
    p = lambda rel: f"{root}/{rel}"  # noqa: E731
    born = {BORN: str(k)}
    kind, *args = op
    try:
        if kind == "create_zvol":
            z.create_zvol(p(args[0]), args[1], sparse=args[2], props=born)
        elif kind == "create_filesystem":
            z.create_filesystem(p(args[0]), born)
        elif kind == "snapshot":
            z.snapshot([p(s) for s in args[0]], born)
        elif kind == "clone":
            z.clone(p(args[0]), p(args[1]), born, reserve=args[2])
        elif kind == "promote":
            z.promote(p(args[0]))
        elif kind == "rename":
            z.rename(p(args[0]), p(args[1]))
        elif kind == "destroy":
            z.destroy(p(args[0]))
        elif kind == "destroy_snapshots":
            z.destroy_snapshots([p(s) for s in args[0]], defer=args[1])
        elif kind == "set_user":
            z.set_props(p(args[0]), {USER: args[1]})
        elif kind == "inherit_user":
            z.inherit(p(args[0]), USER)
        elif kind == "set_volsize":
            z.set_volsize(p(args[0]), args[1])
        elif kind == "hold":
            z.hold(p(args[0]), args[1])
        elif kind == "release":
            z.release(p(args[0]), args[1])
        elif kind == "get":
            props = z.get_props(p(args[0]), LISTED)
            return {k2: (v.value, v.source) for k2, v in props.items() if k2 != "origin"}
        elif kind == "exists":
            return z.exists(p(args[0]))
        elif kind == "user_props":
            return z.user_props(p(args[0]))
        return "ok"
    except ZfsError as exc:
        if exc.transient:
            raise
        return Failed(type(exc).__name__, str(exc))


def tree(z: Zfs, root: str) -> dict[str, dict[str, object]]:
    """The subtree under root, names and origins relative to it, in listing order."""
    cut = len(root) + 1
    out = {}
    for name, props in z.list_tree(root, LISTED).items():
        if name == root:
            continue
        row = {k: (v.value, v.source) for k, v in props.items()}
        origin = props["origin"].value
        row["origin"] = origin[cut:] if origin else None
        out[name[cut:]] = row
    return out


def check_invariants(rows: dict[str, dict[str, object]]) -> None:
    """What must hold of any ZFS tree: origins exist and are snapshots; snapshots belong to a
    listed dataset; births are unique (nothing duplicated, nothing resurrected)."""
    # One snapshot call tags all its snapshots alike; datasets are born one per call.
    births = [r[BORN][0] for n, r in rows.items() if "@" not in n]
    assert len(births) == len(set(births)), rows
    for name, r in rows.items():
        if r["origin"] is not None:
            assert r["origin"] in rows and rows[r["origin"]]["type"][0] == "snapshot", (name, rows)
        if "@" in name:
            assert name.split("@")[0] in rows, (name, rows)


def run_model(seed: int, length: int) -> tuple[list[tuple], list[object], dict]:
    """Draw and run a sequence on a fresh model: the ops, their results, the final tree. Names
    are drawn against the model's current tree (uniformly, from hypothesis's seed: hypothesis's
    own draws lean so hard to small values that trees stayed nearly empty)."""
    rng = random.Random(seed)
    model = ModelZfs(pools=(POOL,))
    root = f"{POOL}/m"
    model.create_filesystem(root)
    ops, results = [], []
    for k in range(length):
        op = draw_op(rng, tree(model, root))
        ops.append(op)
        results.append(apply(model, root, op, k))
    return ops, results, tree(model, root)


def _examples(default: int) -> int:
    return int(os.environ.get("ZFSAGA_DIFF_EXAMPLES", default))


LENGTHS = st.integers(8, 30)
SEEDS = st.integers(0, 2**32 - 1)


def test_model_sequences_keep_zfs_invariants() -> None:
    @settings(max_examples=_examples(300), deadline=None, database=None)
    @given(SEEDS, LENGTHS)
    def run(seed: int, length: int) -> None:
        _, _, rows = run_model(seed, length)
        check_invariants(rows)

    run()


@pytest.mark.realzfs
@pytest.mark.timeout(1800)  # 40 sequences of up to 30 calls, 0.05-0.6 s each in the emulated guest
def test_model_matches_real_zfs(request: pytest.FixtureRequest) -> None:
    real = real_zfs()
    compared = 0

    # CI compares a fixed set of sequences (derandomized) so a red run is reproducible;
    # ZFSAGA_DIFF_RANDOM=1 explores new ones (how the model's last mismatches were found).
    @settings(max_examples=_examples(12), deadline=None, database=None,
              derandomize=os.environ.get("ZFSAGA_DIFF_RANDOM") != "1",
              suppress_health_check=list(HealthCheck))
    @given(SEEDS, LENGTHS)
    def run(seed: int, length: int) -> None:
        nonlocal compared
        ops, want_results, want_tree = run_model(seed, length)
        root = f"{POOL}/d{uuid.uuid4().hex[:10]}"
        real.create_filesystem(root)
        try:
            got_results = [apply(real, root, op, k) for k, op in enumerate(ops)]
            got_tree = tree(real, root)
        finally:
            destroy_tree(root)
        for k, (op, want, got) in enumerate(zip(ops, want_results, got_results)):
            assert got == want, (f"step {k} {op}: real ZFS gave {got!r}, the model {want!r}"
                                 f"\nsequence: {ops}")
        assert got_tree == want_tree, f"sequence: {ops}"
        check_invariants(got_tree)
        compared += 1

    run()
    request.config.stash[DIFF_KEY] = request.config.stash.get(DIFF_KEY, 0) + compared
    print(f"differential: {compared} random sequences compared, model == real ZFS")
