"""``envbranch dlq``: the dead-letter queue from the command line (list, redrive).

It reads the DLQ topic and the live read model of the stack its settings name, as
``envbranch audit`` does; a redrive publishes an entry's original bytes again (with
their command_id) and waits for what became of them, as ``envbranch publish`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime
from typing import Any

from contract.commands import decode_command
from domain.errors import CommandRejected
from envbranch.connections import kafka_options
from envbranch.publisher import publish_command
from envbranch.release_cli import _live_read_model, _utc
from envbranch.settings import Settings
from projections import dead_letters as dl

COLUMNS = ("dlq_offset", "rejected_at", "code", "command_type", "command_id", "applied", "message")


def cmd_dlq_list(args: argparse.Namespace) -> int:
    """List rejected commands on the DLQ, newest first: the reason, the field, the command."""
    settings = Settings.from_env()
    since, until = _utc(args.since, "--since"), _utc(args.until, "--until")
    filters = dl.Filters(
        args.code,
        args.type,
        datetime.fromisoformat(since) if since else None,
        datetime.fromisoformat(until) if until else None,
    )
    security = kafka_options(settings.kafka_security)
    entries = asyncio.run(dl.read_dead_letters(_bootstrap(settings), settings.topics, security))
    shown, total = dl.listed(entries, filters, args.limit, args.offset)
    applied = dl.applied_ids(_live_read_model(settings).db, shown)
    rows = [e.as_dict(e.command_id in applied) for e in shown]
    if args.json:
        print(json.dumps({"results": rows, "total": total}, indent=2, default=str))
        return 0
    _table(rows)
    for entry in shown if args.commands else []:
        print(f"\n{entry.dlq_offset}: {dl.describe(entry)}")
    print(f"\n{len(rows)} of {total} entries")
    return 0


def _table(rows: list[dict[str, Any]]) -> None:
    cells = [[c.upper() for c in COLUMNS]]
    for row in rows:
        line = ["-" if row.get(c) is None else str(row[c]) for c in COLUMNS]
        if row.get("field"):
            line[-1] = f"{row['field']}: {line[-1]}"
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS) - 1)]
    for line in cells:
        fixed = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*fixed, line[-1][:160]]))


def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    """Publish chosen DLQ entries again (by dlq_offset) after their cause was fixed; an
    entry already applied is not sent again. Exit 1 if any is rejected again or missing."""
    settings = Settings.from_env()
    bootstrap = _bootstrap(settings)
    security = kafka_options(settings.kafka_security)
    read = dl.read_dead_letters(bootstrap, settings.topics, security)
    entries = dl.chosen(asyncio.run(read), args.offsets)
    db = _live_read_model(settings).db
    failed = False
    for offset in args.offsets:
        entry = entries.get(offset)
        if entry is None:
            print(f"{offset}: not found on {settings.topics.dlq}")
            failed = True
            continue
        if entry.command_id is not None and dl.applied_ids(db, [entry]):
            print(f"{offset}: {entry.command_id} was applied already: not sent again")
            continue
        if entry.truncated:
            print(f"{offset}: the DLQ kept only the start of this command (too large): not sent")
            failed = True
            continue
        try:
            decode_command(entry.value)  # sent as it was, so it must be a readable command
        except CommandRejected as e:
            print(f"{offset}: not sent: the entry is not a readable command ({e.code}: {e})")
            failed = True
            continue
        outcome = asyncio.run(
            publish_command(
                bootstrap,
                entry.value,
                key=entry.key,
                timeout=args.timeout,
                topics=settings.topics,
                kafka_options=security,
                as_is=True,
            )
        )
        if outcome.status == "accepted":
            print(f"{offset}: {outcome.command_id} applied ({len(outcome.events)} events)")
        elif outcome.status == "rejected":
            print(f"{offset}: rejected again: {json.dumps(outcome.error)}")
            failed = True
        else:
            print(f"{offset}: no outcome within {args.timeout}s for {outcome.command_id}")
            failed = True
    return 1 if failed else 0


def _bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap_servers is None:
        raise SystemExit("KAFKA_BOOTSTRAP_SERVERS is not set: point it at the stack's broker")
    return settings.kafka_bootstrap_servers


def _at_least(least: int) -> Any:
    def number(text: str) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
        return value

    return number


def add_parsers(sub: Any) -> None:
    """``envbranch dlq list`` and ``envbranch dlq redrive``."""
    dlq = sub.add_parser("dlq", help="the dead-letter queue: list and redrive rejected commands")
    commands = dlq.add_subparsers(dest="dlq", required=True)
    listing = commands.add_parser("list", help=cmd_dlq_list.__doc__)
    listing.add_argument("--code", help="only this error code (e.g. not_found)")
    listing.add_argument("--type", help="only this command type (e.g. collections.create)")
    listing.add_argument("--since", help="rejected at or after (ISO 8601)")
    listing.add_argument("--until", help="rejected at or before (ISO 8601)")
    listing.add_argument("--limit", type=_at_least(1), default=50)
    listing.add_argument("--offset", type=_at_least(0), default=0)
    listing.add_argument("--commands", action="store_true", help="print each original command")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(func=cmd_dlq_list)
    redrive = commands.add_parser("redrive", help=cmd_dlq_redrive.__doc__)
    redrive.add_argument("offsets", type=_at_least(0), nargs="+", metavar="DLQ_OFFSET")
    redrive.add_argument("--timeout", type=float, default=30.0)
    redrive.set_defaults(func=cmd_dlq_redrive)
