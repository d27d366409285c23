"""The release commands of the ``envbranch`` command line: replay, audit, diff, checkpoint."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from envbranch.settings import Settings
from projections.read_model import ReadModel

if TYPE_CHECKING:
    from application.environments import Environments
    from envbranch.client import Client

T = TypeVar("T")


def _require(settings: Settings, filename: str, what: str) -> None:
    """Refuse to open (and so create) a SQLite file of the stack that is not there."""
    path = settings.data_dir / filename
    if settings.event_store == "sqlite" and not path.exists():
        raise ValueError(
            f"no {what} at {path}: set ENVBRANCH_DATA_DIR to the stack's data directory"
        )


def _existing_event_store(settings: Settings) -> Environments:
    """The event store, which must exist already (a replay never creates one)."""
    from envbranch.bootstrap import open_event_store

    _require(settings, "events.sqlite3", "event store")
    return open_event_store(settings)


def _live_read_model(settings: Settings) -> ReadModel:
    """The live read model (SQLite under the data dir, or the PostgreSQL schema)."""
    from envbranch.bootstrap import open_read_model

    _require(settings, "read_model.sqlite3", "live read model")
    return open_read_model(settings)


def cmd_replay(args: argparse.Namespace) -> int:
    """Rebuild the read model from the event store up to a position or time into a new
    directory; with --verify, prove it equal to the live one at every recorded digest."""
    from envbranch import replay as r

    settings = Settings.from_env()
    app = _existing_event_store(settings)
    live = _live_read_model(settings) if args.verify else None
    if args.until is None and live is not None:
        until = r.latest_digest_position(live)
    else:
        until = r.resolve_until(app, args.until)
    if args.into:
        into = Path(args.into)
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        into = settings.data_dir / "replays" / f"{until}-{stamp}"
    # Progress on stderr: redrawn in place on a terminal (or with --progress), else a line
    # a second, so that a log shows how far a long replay got and how fast it goes.
    in_place = args.progress or sys.stderr.isatty()
    bar = r.ProgressBar(sys.stderr, in_place=in_place, min_interval=0.0 if in_place else 1.0)
    report = r.replay(app, into, until, live, bar)
    print(f"replayed {report.events_applied} events (positions 1..{until}) into {report.into}")
    if live is None:
        return 0
    positions = ", ".join(str(p) for p in report.verified_positions)
    if report.ok:
        print(f"verified positions [{positions}]: every table equal")
        return 0
    print(f"verified positions [{positions}]: {len(report.mismatches)} tables differ")
    for m in report.mismatches:
        print(
            f"  MISMATCH at position {m.position}: table {m.table} "
            f"(live {m.live_digest or 'missing'}, rebuilt {m.rebuilt_digest or 'missing'})"
        )
    return 1


def _utc(text: str | None, option: str) -> str | None:
    """An ISO-8601 time with a timezone, as the audit table stores times (UTC isoformat)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} must be an ISO-8601 time, not {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{option} {text!r} has no timezone: add one (e.g. {text}Z)")
    return moment.astimezone(UTC).isoformat()


AUDIT_COLUMNS = ("position", "occurred_at", "actor", "type", "aggregate_id", "command_id")


def cmd_audit(args: argparse.Namespace) -> int:
    """Print the audit log (every event, from the live read model) as a table, filtered."""
    from projections import queries

    settings = Settings.from_env()
    filters = {
        "resource_id": args.resource,
        "actor": args.actor,
        "type": args.type,
        "command_id": args.command,
        "from_position": args.from_position,
        "to_position": args.to_position,
        "since": _utc(args.since, "--since"),
        "until": _utc(args.until, "--until"),
    }
    db = _live_read_model(settings).db
    rows, total = queries.audit(db, None, filters, args.limit, args.offset)
    if args.json:
        print(json.dumps({"results": rows, "total": total}, indent=2, default=str))
        return 0
    cells = [[c.upper() for c in AUDIT_COLUMNS]]
    cells += [["-" if row.get(c) is None else str(row[c]) for c in AUDIT_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(AUDIT_COLUMNS))]
    for line in cells:
        first = line[0].rjust(widths[0])
        rest = [cell.ljust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        print("  ".join([first, *rest]).rstrip())
    if total > args.offset + len(rows):
        print(
            f"({len(rows)} of {total} events shown; use --limit, --offset or the filters)",
            file=sys.stderr,
        )
    return 0


def _sdk() -> Client:
    from envbranch.client import Client

    if not os.environ.get("ENVBRANCH_API_KEY"):
        raise ValueError("ENVBRANCH_API_KEY is not set: `envbranch up` prints the admin key")
    return Client()


def _sdk_call(call: Callable[[Client], T]) -> T:
    """Run one SDK call; API errors and an unreachable API become ValueErrors (exit 2)."""
    import httpx

    from envbranch.client import EnvbranchError

    with _sdk() as client:
        try:
            return call(client)
        except EnvbranchError as e:
            raise ValueError(f"the API answered {e.status} {e.type}: {e.message}") from None
        except httpx.TransportError as e:
            raise ValueError(f"cannot reach the API at {client._http.base_url}: {e}") from None


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _print_resource_diff(diff: dict[str, Any], indent: str = "  ") -> None:
    for f in diff.get("fields") or []:
        print(f"{indent}{f['field']}: {_value(f['from'])} -> {_value(f['to'])}")
    docs = diff.get("documents")
    if docs:
        print(
            f"{indent}documents: {docs['added']} added, {docs['removed']} removed, "
            f"{docs['changed']} changed, {docs['unchanged']} unchanged"
        )


def cmd_diff(args: argparse.Namespace) -> int:
    """Show what differs between two namespaces (IDs or names) or two resources (IDs)."""
    diff = _sdk_call(lambda client: client.diff(args.from_, args.to))
    if args.json:
        print(json.dumps(diff, indent=2, default=str))
        return 0
    if "only_in_from" not in diff:  # two resources of one kind
        print(f"{diff['kind']} {diff['name']}: {diff['from_id']} -> {diff['to_id']}")
        if not diff.get("fields") and not diff.get("documents"):
            print("  no differences")
        _print_resource_diff(diff)
        return 0
    a = diff["from"].get("namespace_name") or args.from_
    b = diff["to"].get("namespace_name") or args.to
    print(f"diff {a} -> {b}")
    for item in diff["only_in_from"]:
        print(f"only in {a}: {item['kind']} {item['name']}")
    for item in diff["only_in_to"]:
        print(f"only in {b}: {item['kind']} {item['name']}")
    for changed in diff["changed"]:
        print(f"changed: {changed['kind']} {changed['name']}")
        _print_resource_diff(changed)
    if not (diff["only_in_from"] or diff["only_in_to"] or diff["changed"]):
        print("no differences")
    print(f"unchanged: {len(diff['unchanged'])} resources")
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    """Have the read models record a digest of every table now; print position and digests."""
    checkpoint = _sdk_call(lambda client: client.checkpoint(args.reason))
    print(f"checkpoint at position {checkpoint.position}")
    width = max((len(table) for table in checkpoint.digests), default=0)
    for table, digest in sorted(checkpoint.digests.items()):
        print(f"  {table.ljust(width)}  {digest}")
    return 0
