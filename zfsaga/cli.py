"""`zfsaga`: the operator's view of an SR's sagas: list, show, resume, abort, abandon, gc,
diagram; plus `recover` (heal orphans now) and `revert` (run the sample saga by hand); and
`zfsaga serve` / `zfsaga server status`, the warm server the entry points call through
(plugin/server.py).

Exit codes (stable, for scripts):
  0 ok   1 error   2 usage (or --yes missing)   3 busy (a live process holds the resource)
  4 not found   5 refused by policy (e.g. abort after the pivot)   6 stuck: needs an operator

With --json, stdout carries only results; an error (a usage error included) is one JSON object
on stderr, {"error": {"exit_code": N, "message": "..."}}, and the exit code is the same.

Read-only commands (list, show, diagram) import only the standard library and the journal;
ZFS, the engine, transitions, tenacity and loguru load only for commands that act.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BUSY, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_STUCK = range(7)
STEP_STATUS = {None: "pending", "step_started": "started", "step_done": "done",
               "step_failed": "failed", "comp_started": "compensating",
               "comp_done": "compensated", "comp_failed": "comp-failed"}


class CliError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- state location ----------------------------------------------------------------------------
def state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir:
        return Path(args.state_dir)
    if args.host:
        from zfsaga.location import host_state_dir

        return host_state_dir()
    if args.sr:
        from zfsaga.backend import open_zfs
        from zfsaga.location import sr_state_dir

        return sr_state_dir(open_zfs(), args.sr, create=args.command == "revert")
    raise CliError(EXIT_USAGE, "say which SR: --sr POOL/SR or --state-dir DIR (or --host, "
                               "for the sagas that make, import, export or destroy a pool)")


def open_journal(args: argparse.Namespace, must_exist: bool = True, readonly: bool = False):
    """The SR's journal. Read-only commands open it read-only: they never create, migrate or
    repair one, and work for an operator who cannot write the state directory."""
    from zfsaga.state.journal import Journal

    path = state_dir(args) / "journal.db"
    if must_exist and not path.exists():
        raise CliError(EXIT_NOT_FOUND, f"no journal at {path}")
    return Journal(path, readonly=readonly)


def find_saga(journal, saga_id: str):
    from zfsaga.state.journal import AmbiguousId

    if not saga_id.strip():
        raise CliError(EXIT_USAGE, "an empty saga id names no saga")
    try:
        row = journal.find(saga_id)
    except AmbiguousId as exc:
        raise CliError(EXIT_USAGE, str(exc)) from None
    if row is None:
        raise CliError(EXIT_NOT_FOUND, f"no saga {saga_id!r}")
    return row


def step_rows(row) -> list[dict[str, Any]]:
    last: dict[str, str] = {}
    for ev in row.events:
        if ev.step is not None and ev.type in STEP_STATUS:
            last[ev.step] = ev.type
    return [{"name": s["name"], "step": s["step"], "kind": s["kind"],
             "status": STEP_STATUS[last.get(s["name"])]} for s in row.plan]


def liveness(args: argparse.Namespace, row) -> str:
    from zfsaga.sagas.resources import lock_of
    from zfsaga.state.journal import boot_id

    if row.terminal:
        return "-"
    if not lock_of(state_dir(args), row.resource).is_free():
        return f"running (pid {row.owner_pid})"
    if row.owner_boot_id and row.owner_boot_id != boot_id():
        return "orphaned (previous boot)"
    return "orphaned (lock free)"


def age(ts: float) -> str:
    s = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def saga_json(args: argparse.Namespace, row, events: bool = False) -> dict[str, Any]:
    out = {"schema_version": 1, "id": row.id, "kind": row.kind,
           "kind_version": row.kind_version, "resource": row.resource, "status": row.status,
           "attempts": row.attempts, "last_error": row.last_error, "owner_pid": row.owner_pid,
           "created": row.created, "updated": row.updated, "liveness": liveness(args, row),
           "steps": step_rows(row)}
    if events:
        out["params"] = row.params
        out["events"] = [{"seq": e.seq, "ts": e.ts, "type": e.type, "step": e.step,
                          "attempt": e.attempt, "data": e.data, "actor": e.actor,
                          "status": e.status}
                         for e in row.events]
    return out


def current_step(row) -> str:
    rows = step_rows(row)
    for r in reversed(rows):
        if r["status"] in ("started", "failed", "compensating", "comp-failed"):
            return r["name"]
    done = [r["name"] for r in rows if r["status"] in ("done", "compensated")]
    return done[-1] if done else "-"


# -- read-only commands ------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    if args.host and not args.state_dir and not (state_dir(args) / "journal.db").exists():
        # the host's journal is made by its first pool saga: none yet, so nothing to list
        print("[]" if args.json else "(no sagas)" if args.all or args.status
              else "(no active sagas)")
        return EXIT_OK
    journal = open_journal(args, readonly=True)
    if args.all or args.status:
        rows = journal.list(status=args.status, limit=args.limit or -1)
        total = journal.count(args.status)
    else:
        rows = journal.active()
        total = len(rows)
        rows = rows[:args.limit] if args.limit else rows
    if len(rows) < total:
        print(f"zfsaga: showing the newest {len(rows)} of {total} sagas (--limit)",
              file=sys.stderr)
    for row in rows:
        row.events = list(journal.events(row.id))
    if args.json:
        print(json.dumps([saga_json(args, r) for r in rows], indent=2))
        return EXIT_OK
    table = [("ID", "KIND", "RESOURCE", "STATUS", "STEP", "AGE", "ATTEMPTS", "LIVENESS")]
    for r in rows:
        table.append((r.id, r.kind, r.resource, r.status, current_step(r), age(r.created),
                      str(r.attempts), liveness(args, r)))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    if len(table) == 1:
        print("(no sagas)" if args.all or args.status else "(no active sagas)")
    warn_if_lost(args, journal)
    return EXIT_OK


def warn_if_lost(args: argparse.Namespace, journal) -> None:
    """With --sr, ZFS is open already (it located the journal): compare the journal with its
    SR's witness, one property read, and say so when it is behind."""
    if not args.sr:
        return
    from zfsaga.backend import open_zfs
    from zfsaga.steps import srs

    mark = srs.journal_generation(open_zfs(), args.sr)
    if journal.generation() < mark:
        print(f"zfsaga: journal {journal.path} has lost records (the SR {args.sr} carries "
              f"{srs.JOURNAL_GEN}={mark}, the journal stands at {journal.generation()}): what "
              f"is listed is not all; run `zfsaga --sr {args.sr} recover` to see what its lost "
              f"sagas left", file=sys.stderr)


def cmd_show(args: argparse.Namespace) -> int:
    journal = open_journal(args, readonly=True)
    row = find_saga(journal, args.saga)
    data = saga_json(args, row, events=True)
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_STUCK if row.status == "stuck" else EXIT_OK
    print(f"saga      {row.id}\nkind      {row.kind} v{row.kind_version}\n"
          f"resource  {row.resource}\nstatus    {row.status}   ({data['liveness']})\n"
          f"attempts  {row.attempts}\nerror     {row.last_error or '-'}")
    print("\nplan:")
    for i, s in enumerate(data["steps"], 1):
        print(f"  {i}. {s['name']:<10} {s['step']:<16} {s['kind']:<14} {s['status']}")
    print("\nevents:")
    for e in row.events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts))
        extra = {k: v for k, v in e.data.items()}
        who = f" by {e.actor}" if e.actor else ""
        print(f"  {e.seq:>3} {when} {e.type:<18} {e.step or '':<10}{who} "
              f"{json.dumps(extra) if extra else ''}".rstrip())
    problems = journal.check_well_formed(row.id)
    if problems:
        print("\njournal problems:\n  " + "\n  ".join(problems))
    return EXIT_STUCK if row.status == "stuck" else EXIT_OK


def plan_mermaid(row) -> str:
    colours = {"done": "#9f9", "started": "#f96", "failed": "#f66", "compensating": "#fc6",
               "compensated": "#9cf", "comp-failed": "#f66", "pending": "#eee"}
    lines = ["flowchart TD", f"    start([{row.kind} {row.id}]) --> s1"]
    steps = step_rows(row)
    for i, s in enumerate(steps, 1):
        pivot = " PIVOT" if s["kind"] == "pivot" else ""
        lines.append(f"    s{i}[\"{i}. {s['name']}{pivot}<br/>{s['status']}\"]")
        if i < len(steps):
            lines.append(f"    s{i} --> s{i + 1}")
        lines.append(f"    style s{i} fill:{colours[s['status']]}")
    lines.append(f"    s{len(steps)} --> end([{row.status}])")
    return "\n".join(lines)


def plan_svg(row) -> str:
    """A small picture of the plan: one box per step, coloured by where it stands."""
    colours = {"done": "#9f9", "started": "#f96", "failed": "#f66", "compensating": "#fc6",
               "compensated": "#9cf", "comp-failed": "#f66", "pending": "#eee"}
    steps = step_rows(row)
    width, box_h, gap = 420, 40, 18
    height = 70 + len(steps) * (box_h + gap) + 40
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # noqa
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="14">',
           f'<text x="10" y="24" font-weight="bold">{esc(row.kind)} {esc(row.id)}</text>',
           f'<text x="10" y="46">status: {esc(row.status)}</text>']
    y = 64
    for i, s in enumerate(steps, 1):
        stroke = 4 if s["status"] in ("started", "failed", "comp-failed") else 1
        out.append(f'<rect x="40" y="{y}" width="340" height="{box_h}" rx="6" '
                   f'fill="{colours[s["status"]]}" stroke="#333" stroke-width="{stroke}"/>')
        label = f'{i}. {s["name"]} ({s["kind"]}): {s["status"]}'
        out.append(f'<text x="52" y="{y + 25}">{esc(label)}</text>')
        if i < len(steps):
            out.append(f'<line x1="210" y1="{y + box_h}" x2="210" y2="{y + box_h + gap}" '
                       f'stroke="#333"/>')
        y += box_h + gap
    out.append("</svg>")
    return "\n".join(out)


def cmd_diagram(args: argparse.Namespace) -> int:
    journal = open_journal(args, readonly=True)
    row = find_saga(journal, args.saga)
    if args.svg:
        try:
            Path(args.svg).write_text(plan_svg(row), encoding="utf-8")
        except OSError as exc:
            raise CliError(EXIT_ERROR, f"cannot write {args.svg}: {exc.strerror}") from None
    from zfsaga.state.lifecycle import mermaid_lifecycle  # stdlib-only at import

    text = f"%% plan\n{plan_mermaid(row)}\n\n%% lifecycle\n{mermaid_lifecycle(row.status)}"
    print(text)
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    journal = open_journal(args)
    if not (args.dry_run or args.yes):
        raise CliError(EXIT_USAGE, "gc forgets finished sagas: add --yes (or --dry-run)")
    from zfsaga.sagas import operator

    ids = operator.gc(journal, args.older_than * 86400, dry_run=args.dry_run)
    verb = "would forget" if args.dry_run else "forgot"
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "sagas": ids}))
    else:
        print(f"{verb} {len(ids)} finished saga(s) older than {args.older_than} day(s)")
    return EXIT_OK


# -- commands that act -------------------------------------------------------------------------
def actor() -> str:
    import getpass

    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"{user} (uid {os.getuid()}, pid {os.getpid()})"


def make_engine(args: argparse.Namespace, journal, zfs=None):
    from zfsaga.backend import open_zfs
    from zfsaga.faults import FaultHooks, Faults
    from zfsaga.sagas.engine import Engine

    faults = Faults.from_env()
    boundary = faults.boundary if faults else None
    if faults is not None and journal is not None:
        journal._boundary = faults.boundary
    zfs = zfs or open_zfs(FaultHooks(faults))
    return Engine(zfs, journal, state_dir(args), boundary=boundary, lock_wait=args.wait,
                  actor=actor())


def dry_run(args: argparse.Namespace, engine, row, direction: str) -> int:
    """What the command would do, by the saga's own status (sagas/operator.py preview).
    Touches nothing."""
    from zfsaga.sagas import operator

    print("\n".join(operator.preview(engine, row, direction)) or "nothing to do")
    return EXIT_OK


def direction_of(args: argparse.Namespace, engine, row) -> str:
    """Which way the command would drive the saga, or CliError when it would be refused."""
    from zfsaga.sagas import operator

    if args.command == "abandon":
        if row.terminal:
            raise CliError(EXIT_REFUSED, f"saga {row.id} is {row.status}: nothing to abandon")
        return "abandon"
    if row.terminal:
        raise CliError(EXIT_REFUSED, f"saga {row.id} is {row.status}: nothing to "
                                     f"{args.command}")
    if not operator.plan_known(row):
        raise CliError(EXIT_REFUSED, f"saga {row.id}'s recorded plan is not one this zfsaga "
                                     f"knows: it can only be abandoned (zfsaga abandon)")
    if args.command == "abort":
        from zfsaga.state.lifecycle import IllegalMove

        try:
            operator.check_abort(engine, row)
        except IllegalMove as exc:
            raise CliError(EXIT_REFUSED, f"{exc}; the way out is `zfsaga resume`") from None
        return "backward"
    return operator.direction(row)


def cmd_act(args: argparse.Namespace) -> int:
    journal = open_journal(args)
    row = find_saga(journal, args.saga)
    engine = make_engine(args, journal)
    direction = direction_of(args, engine, row)
    if args.dry_run:
        return dry_run(args, engine, row, direction)
    if not args.yes:
        raise CliError(EXIT_USAGE, f"{args.command} changes ZFS: add --yes (or --dry-run)")
    from zfsaga.sagas import operator

    if args.command == "abandon":
        outcome, left = operator.abandon(engine, row.id, args.reason)
        report = {"id": row.id, "status": outcome.status, "left_behind": left}
        print(json.dumps(report) if args.json else
              f"saga {row.id} abandoned; left behind: {', '.join(left) or 'nothing'}")
        return EXIT_OK
    act = operator.resume if args.command == "resume" else operator.abort
    outcome = act(engine, row.id, args.reason)
    return report_outcome(args, outcome, ok=("compensated",) if args.command == "abort"
                          else ("succeeded", "compensated"))


def outcome_json(outcome) -> dict[str, Any]:
    return {"id": outcome.saga_id, "status": outcome.status, "error": outcome.error}


def report_outcome(args: argparse.Namespace, outcome,
                   ok: tuple[str, ...] = ("succeeded",)) -> int:
    """Print one outcome; exit 0 only when the saga ended as the command meant it to (a
    revert that compensated did nothing: that is an error to its caller)."""
    if args.json:
        print(json.dumps(outcome_json(outcome)))
    else:
        print(f"saga {outcome.saga_id}: {outcome.status}"
              + (f" ({outcome.error})" if outcome.error else ""))
    if outcome.status == "stuck":
        return EXIT_STUCK
    return EXIT_OK if outcome.status in ok else EXIT_ERROR


def set_aside(path: Path) -> Path:
    """Move a damaged journal (and its -wal and -shm) aside, kept for a post-mortem."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            src.rename(aside.with_name(aside.name + suffix))
    return aside


def cmd_recover(args: argparse.Namespace) -> int:
    if args.acknowledge:
        args.yes = True
    if args.host and not args.state_dir:
        return recover_host(args)
    if not args.sr:
        return recover_orphans(args, open_journal(args), {})
    from zfsaga.sagas import operator
    from zfsaga.state.journal import Journal, JournalError

    path = state_dir(args) / "journal.db"
    journal, loss, damaged = None, None, True
    try:
        journal = Journal(path)
        damage = journal.damage()
        damaged = damage is not None
        loss = f"it is damaged ({damage})" if damaged else None
    except JournalError as exc:
        loss = str(exc)
    engine = make_engine(args, journal)
    if loss is None:
        loss = operator.journal_loss(engine, args.sr)
    if loss is None:
        strangers = (operator.acknowledge(engine, args.sr) if args.yes
                     else operator.strangers(engine, args.sr))
        return recover_orphans(args, journal, strangers, engine)
    tagged, holds = operator.left_by_lost_sagas(engine.zfs, args.sr,
                                                None if damaged else journal)
    report: dict[str, Any] = {"schema_version": 1, "journal": str(path), "lost": loss,
                              "unknown_tags": tagged, "holds": holds, "acknowledged": False}
    if args.yes:
        if not args.reason:
            raise CliError(EXIT_USAGE, "acknowledging a lost journal needs --reason (recorded)")
        if damaged:
            if journal is not None:
                journal.close()
            report["damaged_journal_kept_at"] = str(set_aside(path))
            journal = Journal(path)
            engine = make_engine(args, journal, engine.zfs)
        journal.forget(sorted(set(tagged.values())), actor=actor())
        operator.acknowledge(engine, args.sr, args.reason)
        report["acknowledged"] = True
    if args.json:
        print(json.dumps(report))
    else:
        print(f"journal {path} has lost records: {loss}")
        for name, saga_id in tagged.items():
            print(f"left: {name} is tagged by saga {saga_id}, which the journal has no record "
                  f"of (check it: it may be a VDI's current head)")
        for hold in holds:
            print(f"left: {hold} (release it by hand once nothing needs the snapshot: zfs "
                  f"release TAG SNAPSHOT)")
        if not tagged and not holds:
            print("left: nothing zfsaga's tags name")
        if report.get("damaged_journal_kept_at"):
            print(f"the damaged journal is kept at {report['damaged_journal_kept_at']}")
        print("acknowledged: sagas may run again; zfsaga destroyed nothing" if args.yes else
              f"nothing was changed; to acknowledge the loss and let sagas run again: "
              f"zfsaga --sr {args.sr} recover --yes --reason '...'")
    if not args.yes:
        return EXIT_REFUSED
    return recover_orphans(args, journal, {}, engine, report=not args.json)


def recover_host(args: argparse.Namespace) -> int:
    """The host's journal: heal its orphaned pool sagas (when it exists), and report every
    imported pool zfsaga made by a saga it does not know (the journal lost or the host
    reinstalled). Destroys nothing: xapi's retry of that SR.create takes such a pool over."""
    from zfsaga.backend import open_zfs
    from zfsaga.sagas import operator
    from zfsaga.sagas.pool_create import lost_made_pool

    journal = open_journal(args) if (state_dir(args) / "journal.db").exists() else None
    engine = make_engine(args, journal) if journal is not None else None
    outcomes = operator.recover(engine) if engine is not None else []
    zfs = engine.zfs if engine is not None else open_zfs()
    known = journal.knows if journal is not None else (lambda saga_id: False)
    lost = [found for pool in zfs.imported_pools()
            if (found := lost_made_pool(zfs, known, pool)) is not None]
    if args.json:
        print(json.dumps({"schema_version": 1, "recovered": [outcome_json(o) for o in outcomes],
                          "unknown_pools": lost}))
        return EXIT_OK
    for o in outcomes:
        print(f"saga {o.saga_id}: {o.status}" + (f" ({o.error})" if o.error else ""))
    for found in lost:
        print(f"pool {found['pool']}: made by saga {found['saga']} (org.zfsaga:made-pool="
              f"{found['made_pool']}) for SR {found['sr_uuid'] or '(none)'}, which the host "
              f"journal does not know"
              + (f"; it holds {', '.join(found['others'])}, which zfsaga did not make"
                 if found["others"] else "")
              + ". The same SR.create (same uuid, devices and pool) takes it over; or take it "
                f"on with dataset={found['pool']}; or, once nothing in it is needed, zpool "
                f"destroy {found['pool']} by hand")
    if not outcomes and not lost:
        print("no orphaned pool sagas; no pool made by a saga the host journal does not know")
    return EXIT_OK


def recover_orphans(args: argparse.Namespace, journal, strangers: dict[str, str],
                    engine=None, report: bool = True) -> int:
    """Heal the SR's orphaned sagas now, and report the datasets tagged by unknown sagas
    (`report` False: the caller printed its own JSON already)."""
    from zfsaga.sagas import operator

    engine = engine or make_engine(args, journal)
    outcomes = operator.recover(engine)
    if not report:
        pass
    elif args.json:
        print(json.dumps({"schema_version": 1, "recovered": [outcome_json(o) for o in outcomes],
                          "unknown_tags": strangers, "acknowledged": bool(args.yes)}))
    else:
        for o in outcomes:
            print(f"saga {o.saga_id}: {o.status}" + (f" ({o.error})" if o.error else ""))
        if not outcomes:
            print("no orphaned sagas")
        for name, saga_id in strangers.items():
            print(f"{'acknowledged' if args.yes else 'unknown'}: {name} is tagged by "
                  f"saga {saga_id}, which this journal has no record of (check it: it may be "
                  f"a VDI's current head; zfsaga never destroys it on its own)")
    if any(o.status == "stuck" for o in outcomes):
        return EXIT_STUCK
    return EXIT_ERROR if strangers and not args.yes else EXIT_OK


def cmd_revert(args: argparse.Namespace) -> int:
    if not args.sr:  # before anything is opened or created
        raise CliError(EXIT_USAGE, "revert needs --sr")
    from zfsaga.sagas import volume_revert

    journal = open_journal(args, must_exist=False)
    engine = make_engine(args, journal)
    outcome = volume_revert.start(engine, args.sr, args.vdi, args.snapshot)
    return report_outcome(args, outcome)


def _finite_nonnegative(flag: str, unit: str):
    """An argparse type: a finite number >= 0 of `unit` (nan would never time out a --wait;
    -1 days would forget every saga)."""
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of {unit}: {text!r}") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{flag} must be a finite number >= 0, not {text}")
        return value

    return parse


wait_seconds = _finite_nonnegative("--wait", "seconds")
days = _finite_nonnegative("--older-than", "days")


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


# -- main --------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors follow --json too (see `fail`)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if JSON_ERRORS[0]:
            fail(EXIT_USAGE, f"{self.prog}: {message}")
            raise SystemExit(EXIT_USAGE)
        super().error(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="zfsaga", description="Inspect and repair zfsaga sagas.",
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sr", help="the SR dataset (POOL/SR); its state lives with the pool")
    p.add_argument("--state-dir", default=os.environ.get("ZFSAGA_SR_STATE_DIR"),
                   help="the SR's state directory directly (journal.db, locks/)")
    p.add_argument("--host", action="store_true",
                   help="the host's own journal: the sagas that make, import, export or "
                        "destroy the pool of an SR on devices (ZFSAGA_HOST_STATE_DIR, default "
                        "/var/lib/zfsaga)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--wait", type=wait_seconds, default=60.0,
                   help="seconds to wait for a busy resource (then exit 3)")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="active sagas (--all: every saga)")
    ls.add_argument("--all", action="store_true")
    from zfsaga.state.lifecycle import STATES  # plain data: transitions loads only on use

    ls.add_argument("--status", choices=STATES)
    ls.add_argument("--limit", type=non_negative_int, default=0,
                    help="show only the newest N (default: all; a note says when some are "
                         "left out)")
    for name in ("show", "diagram"):
        sp = sub.add_parser(name, help=f"{name} one saga")
        sp.add_argument("saga", help="saga id or unique prefix")
        if name == "diagram":
            sp.add_argument("--svg", help="also write the plan as an SVG image here")
    for name, what in (("resume", "continue a stuck or orphaned saga in its direction"),
                       ("abort", "undo a saga that has not reached its pivot"),
                       ("abandon", "close the record, touching nothing; lists what is left")):
        sp = sub.add_parser(name, help=what)
        sp.add_argument("saga")
        sp.add_argument("--reason", required=True, help="recorded in the journal")
        sp.add_argument("--yes", action="store_true")
        sp.add_argument("--dry-run", action="store_true")
    gc = sub.add_parser("gc", help="forget finished sagas older than N days")
    gc.add_argument("--older-than", type=days, default=30.0, metavar="DAYS")
    gc.add_argument("--yes", action="store_true")
    gc.add_argument("--dry-run", action="store_true")
    rc = sub.add_parser("recover", help="heal orphaned sagas of the SR now; with --sr, also "
                                         "report datasets tagged by sagas the journal lost")
    rc.add_argument("--yes", action="store_true",
                    help="acknowledge what was lost: record the unknown sagas as forgotten "
                         "and set the journal in line with the SR's witness (touches no "
                         "dataset; a damaged journal is moved aside, kept), so sagas run again")
    rc.add_argument("--reason", help="recorded in the journal (needed with --yes after a loss)")
    rc.add_argument("--acknowledge", action="store_true", help=argparse.SUPPRESS)
    rv = sub.add_parser("revert", help="revert a VDI to a snapshot (the sample saga)")
    rv.add_argument("vdi")
    rv.add_argument("snapshot")
    return p


COMMANDS = {"list": cmd_list, "show": cmd_show, "diagram": cmd_diagram, "gc": cmd_gc,
            "resume": cmd_act, "abort": cmd_act, "abandon": cmd_act, "recover": cmd_recover,
            "revert": cmd_revert}


#: Whether errors are JSON (--json on the command line), known before argparse reads it.
JSON_ERRORS = [False]


def fail(code: int, message: str) -> int:
    """Say an error on stderr: a JSON object with --json, else a line of words."""
    if JSON_ERRORS[0]:
        print(json.dumps({"error": {"exit_code": code, "message": message}}), file=sys.stderr)
    else:
        print(f"zfsaga: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] in (["serve"], ["server"]):  # the warm server: no SR, no journal
        from zfsaga.plugin.server import main as server_main

        return server_main(words)
    JSON_ERRORS[0] = "--json" in (sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CliError as exc:
        return fail(exc.code, str(exc))
    except Exception as exc:  # typed errors of the layers below, mapped to exit codes
        return _exit_for(exc)


def _exit_for(exc: Exception) -> int:
    import sqlite3

    if isinstance(exc, sqlite3.Error):  # a damaged journal, read outside Journal's own checks
        return fail(EXIT_ERROR, f"the journal cannot be read ({exc}): it is damaged, and every "
                                f"saga of its SR is refused until it is dealt with. Restore it "
                                f"from a backup; or run `zfsaga --sr SR recover` to list what "
                                f"its sagas left, then `zfsaga --sr SR recover --yes --reason "
                                f"'...'` to move it aside (kept) and start a new one")
    name = type(exc).__name__
    codes = {"InvalidName": EXIT_USAGE, "InvalidValue": EXIT_USAGE,
             "AmbiguousId": EXIT_USAGE, "JournalLost": EXIT_REFUSED, "UnknownPlan": EXIT_REFUSED,
             "LockBusy": EXIT_BUSY, "SagaBlocked": EXIT_STUCK, "ResourceTaken": EXIT_BUSY,
             "IllegalMove": EXIT_REFUSED, "SagaNotFound": EXIT_NOT_FOUND,
             "NotFound": EXIT_NOT_FOUND, "JournalError": EXIT_ERROR,
             # where the SR's state lives: no state dataset yet, or one that is not zfsaga's
             "FileNotFoundError": EXIT_NOT_FOUND, "PermissionError": EXIT_ERROR}
    code = codes.get(name)
    if code is None and hasattr(exc, "transient"):  # any other ZfsError
        code = EXIT_ERROR
    if code is None and JSON_ERRORS[0]:  # a bug of zfsaga's: still an answer a script reads
        code = EXIT_ERROR
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    if code is None:
        raise exc
    return fail(code, str(exc))


if __name__ == "__main__":
    raise SystemExit(main())
