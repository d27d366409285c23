"""The ``envbranch`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from domain.envelopes import Topics, read_event
from envbranch.bootstrap import prepare_read_side
from envbranch.broker import EmbeddedBroker
from envbranch.connections import kafka_options, preflight
from envbranch.dlq_cli import add_parsers as add_dlq_parsers
from envbranch.publisher import publish_command
from envbranch.readiness import StartupFailed
from envbranch.release_cli import cmd_audit, cmd_checkpoint, cmd_diff, cmd_replay
from envbranch.settings import Settings
from envbranch.stack import COMPONENTS, READY_TIMEOUT, bind_api_socket, run
from envbranch.status_cli import add_parser as add_status_parser
from envbranch.tasks_cli import add_parser as add_tasks_parser
from projections.auth import ApiKeys


def _bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap_servers is None:
        raise SystemExit(
            "KAFKA_BOOTSTRAP_SERVERS is not set: point it at the broker "
            "(`envbranch up` prints the address of the embedded one)"
        )
    return settings.kafka_bootstrap_servers


def cmd_up(args: argparse.Namespace) -> int:
    """Run the embedded stack in the foreground: broker, command processor, relay, projector,
    vector processor and API; says it is up once every one of them is ready."""
    settings = Settings.from_env()
    if "ENVBRANCH_PROCESSOR_GROUP" not in os.environ:
        # One processor reads every partition: no group join to wait for.
        settings = dataclasses.replace(settings, processor_group=None)
    if args.api_port is not None:
        settings = dataclasses.replace(settings, api_port=args.api_port)
    api_socket = bind_api_socket(settings)  # first: a port in use stops nothing but this
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    broker = None
    bootstrap = settings.kafka_bootstrap_servers
    try:
        if bootstrap is None:
            broker = EmbeddedBroker(port=args.port, log_path=settings.data_dir / "broker.log")
            bootstrap = broker.start()
        preflight(settings, bootstrap)  # a refused password or certificate: one clear line
        _, _, keys = prepare_read_side(settings)
        run(
            settings,
            bootstrap,
            COMPONENTS,
            api_socket=api_socket,
            on_ready=lambda: _say_it_is_up(settings, bootstrap, keys),
            ready_timeout=args.ready_timeout,
        )
    finally:
        api_socket.close()
        if broker is not None:
            broker.stop()
    return 0


def _say_it_is_up(settings: Settings, bootstrap: str, keys: ApiKeys) -> None:
    # The first key is made only now: a stack that never came up has not shown, and so has
    # not spent, the one admin key.
    if not keys.any():
        _, admin_key = keys.create("admin", None)
        print(f"admin API key (shown once, keep it): {admin_key}", flush=True)
    print(f"envbranch is up. Kafka bootstrap servers: {bootstrap}", flush=True)
    print(f"  API: {settings.api_url}/v1 (OpenAPI at {settings.api_url}/docs)")
    print(f"  event store: {settings.event_store} (data in {settings.data_dir.resolve()})")
    print(f"  try: KAFKA_BOOTSTRAP_SERVERS={bootstrap} envbranch events --follow", flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run one or more components against KAFKA_BOOTSTRAP_SERVERS (one per container)."""
    settings = Settings.from_env()
    preflight(settings, _bootstrap(settings))  # a refused password or certificate: one line
    run(settings, _bootstrap(settings), args.components)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Send a command envelope and print its events, or why it was rejected."""
    settings = Settings.from_env()
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    key = args.key.encode() if args.key else None
    preflight(settings, _bootstrap(settings), postgres=False)
    outcome = asyncio.run(
        publish_command(
            _bootstrap(settings),
            raw,
            key=key,
            wait=not args.no_wait,
            timeout=args.timeout,
            topics=settings.topics,
            kafka_options=kafka_options(settings.kafka_security),
        )
    )
    where = f"partition {outcome.partition} offset {outcome.offset}"
    if outcome.status == "accepted":
        print(f"accepted {outcome.command_id} ({where}): {len(outcome.events)} events")
        for envelope in outcome.events:
            print(envelope.model_dump_json())
        return 0
    if outcome.status == "rejected":
        print(f"rejected ({where}): {json.dumps(outcome.error)}")
        return 1
    if outcome.status == "published":
        print(f"published {outcome.command_id} ({where})")
        return 0
    print(f"no outcome within {args.timeout}s for {outcome.command_id} ({where})")
    return 2


def cmd_events(args: argparse.Namespace) -> int:
    """Print the event log (the audit log) from the start."""
    settings = Settings.from_env()
    with contextlib.suppress(KeyboardInterrupt):
        preflight(settings, _bootstrap(settings), postgres=False)
        security = kafka_options(settings.kafka_security)
        asyncio.run(
            _print_events(_bootstrap(settings), settings.topics, args.follow, args.json, security)
        )
    return 0


async def _print_events(
    bootstrap: str, topics: Topics, follow: bool, as_json: bool, security: dict[str, Any]
) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security)
    await consumer.start()
    try:
        tp = TopicPartition(topics.events, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        if not as_json:
            print(f"{'POSITION':>8}  {'OCCURRED_AT':<26}  {'TYPE':<28}  {'AGGREGATE':<37}  ACTOR")
        while follow or await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                envelope = read_event(record.value)
                if envelope is None:
                    print(f"(offset {record.offset}: not an event envelope)", file=sys.stderr)
                elif as_json:
                    print(envelope.model_dump_json())
                else:
                    print(
                        f"{envelope.position:>8}  {envelope.occurred_at.isoformat():<26}  "
                        f"{envelope.type:<28}  {envelope.aggregate_id:<37}  {envelope.actor}"
                    )
            sys.stdout.flush()
    finally:
        await consumer.stop()


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create an API key in the read-model database and print it (shown once)."""
    settings = Settings.from_env()
    db, _, keys = prepare_read_side(settings)
    namespace_ids = None
    if args.namespace:
        from projections import queries

        namespace_ids = []
        for identifier in args.namespace:
            row = queries.namespace(db, identifier)
            if row is None:
                print(f"envbranch: namespace {identifier!r} not found", file=sys.stderr)
                return 2
            namespace_ids.append(row["namespace_id"])
    _, api_key = keys.create(args.principal, namespace_ids)
    print(api_key)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole story on a stack of its own (in a fresh temporary data directory)."""
    from envbranch import demo

    return demo.main(args)


def cmd_schemas(args: argparse.Namespace) -> int:
    """Write the topics' contract as JSON Schema files (the commands and events topics)."""
    from contract.schemas import write_schemas

    written = write_schemas(args.out)
    print(f"wrote {len(written)} files under {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``envbranch`` argument parser: one subcommand per ``cmd_*`` function."""
    parser = argparse.ArgumentParser(
        prog="envbranch", description="Environment branching for AI retrieval pipelines."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    # The order here is the order of `envbranch --help`.
    for add_subcommand in (
        _add_up,
        _add_serve,
        _add_publish,
        _add_keys,
        _add_events,
        _add_replay,
        _add_audit,
        _add_diff,
        _add_checkpoint,
        _add_demo,
        _add_schemas,
        add_dlq_parsers,
        add_status_parser,
        add_tasks_parser,
    ):
        add_subcommand(sub)
    return parser


_Subcommands = argparse._SubParsersAction  # what add_subparsers returns


def _add_up(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    up = sub.add_parser("up", help=cmd_up.__doc__)
    up.add_argument("--port", type=int, default=None, help="embedded broker port (default: free)")
    up.add_argument(
        "--api-port", type=_positive, default=None, help="API port (overrides ENVBRANCH_API_PORT)"
    )
    up.add_argument(
        "--ready-timeout",
        type=float,
        default=READY_TIMEOUT,
        metavar="SECONDS",
        help=f"give up unless every component is ready within this (default {READY_TIMEOUT:g})",
    )
    up.set_defaults(func=cmd_up)


def _add_serve(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help=cmd_serve.__doc__)
    serve.add_argument("components", nargs="+", choices=COMPONENTS)
    serve.set_defaults(func=cmd_serve)


def _add_publish(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    publish = sub.add_parser("publish", help=cmd_publish.__doc__)
    publish.add_argument("file", nargs="?", default="-", help="command JSON file, or - for stdin")
    publish.add_argument(
        "--key", help="Kafka key (e.g. the namespace, to keep its commands in order)"
    )
    publish.add_argument("--no-wait", action="store_true", help="do not wait for the outcome")
    publish.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
    publish.set_defaults(func=cmd_publish)


def _add_keys(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys", required=True)
    create_key = keys.add_parser("create", help=cmd_keys_create.__doc__)
    create_key.add_argument("principal", help="who the key acts as (the actor on its events)")
    create_key.add_argument(
        "--namespace", action="append", help="limit the key to this namespace (repeatable)"
    )
    create_key.set_defaults(func=cmd_keys_create)


def _add_events(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    events = sub.add_parser("events", help=cmd_events.__doc__)
    events.add_argument("--follow", "-f", action="store_true", help="keep reading new events")
    events.add_argument("--json", action="store_true", help="print the raw JSON envelopes")
    events.set_defaults(func=cmd_events)


def _add_replay(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser("replay", help=cmd_replay.__doc__)
    replay.add_argument(
        "--until",
        metavar="POSITION|TIME",
        help="last position, or an ISO-8601 time with timezone (default: the log's end; "
        "with --verify, the live model's last digest position)",
    )
    replay.add_argument(
        "--into", metavar="DIR", help="new directory (default: <data dir>/replays/<until>-<time>)"
    )
    replay.add_argument(
        "--verify", action="store_true", help="compare digests with the live read model"
    )
    replay.add_argument(
        "--progress",
        action="store_true",
        help="redraw the progress bar in place even if stderr is no TTY (else a line a second)",
    )
    replay.set_defaults(func=cmd_replay)


def _add_audit(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help=cmd_audit.__doc__)
    audit.add_argument("--resource", metavar="ID", help="events of this resource (aggregate)")
    audit.add_argument("--actor", help="events caused by this principal")
    audit.add_argument("--type", metavar="T", help="events of this type, e.g. Ref.Moved")
    audit.add_argument("--command", metavar="ID", help="events of this command_id")
    audit.add_argument("--since", metavar="TIME", help="occurred at or after (ISO-8601)")
    audit.add_argument("--until", metavar="TIME", help="occurred at or before (ISO-8601)")
    audit.add_argument("--from-position", type=int, metavar="N", help="position at least N")
    audit.add_argument("--to-position", type=int, metavar="N", help="position at most N")
    audit.add_argument("--limit", type=_positive, default=100, help="events to show (100)")
    audit.add_argument("--offset", type=_not_negative, default=0, help="events to skip")
    audit.add_argument("--json", action="store_true", help="print JSON instead of a table")
    audit.set_defaults(func=cmd_audit)


def _add_diff(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    diff = sub.add_parser("diff", help=cmd_diff.__doc__)
    diff.add_argument("from_", metavar="FROM", help="a namespace (ID or name) or a resource ID")
    diff.add_argument("to", metavar="TO", help="the same kind as FROM")
    diff.add_argument("--json", action="store_true", help="print the API's JSON answer")
    diff.set_defaults(func=cmd_diff)


def _add_checkpoint(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    checkpoint = sub.add_parser("checkpoint", help=cmd_checkpoint.__doc__)
    checkpoint.add_argument("--reason", default="", help="recorded with the checkpoint")
    checkpoint.set_defaults(func=cmd_checkpoint)


def _add_demo(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help=cmd_demo.__doc__)
    demo.add_argument(
        "--data-dir", type=Path, default=None, help="data directory (default: a fresh temp dir)"
    )
    demo.add_argument("--keep", action="store_true", help="keep the data directory afterwards")
    demo.set_defaults(func=cmd_demo)


def _add_schemas(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    schemas = sub.add_parser("schemas", help=cmd_schemas.__doc__)
    schemas.add_argument(
        "--out", type=Path, default=Path("schemas"), help="folder to write (default: schemas)"
    )
    schemas.set_defaults(func=cmd_schemas)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except ValueError as e:  # settings errors read best without a traceback
        print(f"envbranch: {e}", file=sys.stderr)
        return 2
    except StartupFailed as e:  # the message says what to change
        print(f"envbranch: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
