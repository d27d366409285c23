"""How a command's cost grows with history: per-command median latency early and late.

In-process, through the application (no Kafka): the processor's own time per command.
Each case runs twice in this process, the baseline without the aggregate cache (each
command reloads what it touches from all of its events) and then as the command
processor runs it, and prints late/early for both:

  (a) collections.create (and a clone every 10th) in one namespace growing to N resources
  (b) collections.documents.write (10 documents) to one collection, N writes
  (c) refs.move of one ref, N/2 moves

    python bench/growth.py                 # N = 10,000 on SQLite
    python bench/growth.py --postgres      # the same on PostgreSQL (127.0.0.1:5432)
    python bench/growth.py -n 2000         # quicker
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from application.environments import (  # noqa: E402
    OWN_DATA_TOPICS,
    TASK_DATA_TOPICS,
    Environments,
)
from contract.commands import command_from_document  # noqa: E402

EXTRACTOR = {"feature_extractor_name": "text_extractor", "version": "v1"}
SEARCH = {"stage_name": "search", "config": {"stage_id": "feature_search"}}
SAMPLE = 50  # commands timed at each end
POSTGRES_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
DATA_TOPICS = [*OWN_DATA_TOPICS, *TASK_DATA_TOPICS]
_ids = itertools.count()


def run(app: Environments, type_: str, body: dict[str, Any]) -> float:
    """Apply one command; the seconds it took."""
    return timed(app, type_, body)[0]


def timed(app: Environments, type_: str, body: dict[str, Any]) -> tuple[float, int]:
    """Apply one command; the seconds it took and the position of its last event."""
    command = command_from_document(
        {"command_id": f"c-{next(_ids)}", "type": type_, "body": body, "actor": "bench"}
    )
    started = time.perf_counter()
    outcome = app.execute(command)
    return time.perf_counter() - started, max(outcome.positions)


# How the application loads an aggregate: what each variant turns off ("": no cache).
VARIANTS = {
    "baseline: every event": {"AGGREGATE_CACHE_MAXSIZE": "", "IS_SNAPSHOTTING_ENABLED": "n"},
    "snapshots, no cache": {"AGGREGATE_CACHE_MAXSIZE": ""},
    "as the processor runs": {},
}


def open_app(postgres: bool, variant: str, directory: Path) -> Environments:
    env = dict(VARIANTS[variant])
    if postgres:
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME="test",
            POSTGRES_HOST="127.0.0.1",
            POSTGRES_PORT="5432",
            POSTGRES_USER="postgres",
            POSTGRES_PASSWORD="",
            POSTGRES_SCHEMA=postgres_schema(),
            CREATE_TABLE="true",
        )
    else:
        db = directory / f"events-{uuid.uuid4().hex[:8]}.sqlite3"
        env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(db))
    return Environments(env=env)


SCHEMAS: list[str] = []  # dropped at the end


def postgres_schema() -> str:
    import psycopg

    name = f"growth_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    SCHEMAS.append(name)
    return name


def drop_schemas() -> None:
    import psycopg

    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        for name in SCHEMAS:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def grow(step: Callable[[int], float], total: int) -> tuple[float, float]:
    """Median seconds of the first SAMPLE steps and of the last SAMPLE of ``total``."""
    times = [step(i) for i in range(total)]
    return statistics.median(times[:SAMPLE]), statistics.median(times[-SAMPLE:])


def namespace(app: Environments) -> str:
    name = f"ns-{uuid.uuid4().hex[:8]}"
    run(app, "namespaces.create", {"namespace_name": name})
    body = {"namespace_identifier": name, "bucket_name": "raw", "bucket_schema": {"properties": {}}}
    run(app, "buckets.create", body)
    return name


def with_docs(app: Environments) -> tuple[str, int]:
    """A new namespace with a collection "docs"; and the position it was created at."""
    ns = namespace(app)
    body = {"namespace_identifier": ns, "collection_name": "docs"}
    source = {"type": "bucket", "bucket_ids": ["raw"]}
    create = {**body, "source": source, "feature_extractor": EXTRACTOR}
    return ns, timed(app, "collections.create", create)[1]


def case_resources(app: Environments, total: int) -> tuple[float, float]:
    ns = namespace(app)
    source = {"type": "bucket", "bucket_ids": ["raw"]}

    def step(i: int) -> float:
        if i % 10 == 9:
            body = {"namespace_identifier": ns, "collection_identifier": f"c{i - 1}"}
            return run(app, "collections.clone", {**body, "collection_name": f"c{i}"})
        body = {"namespace_identifier": ns, "collection_name": f"c{i}", "source": source}
        return run(app, "collections.create", {**body, "feature_extractor": EXTRACTOR})

    return grow(step, total)


def case_documents(app: Environments, total: int) -> tuple[float, float]:
    ns, _ = with_docs(app)
    docs = [{"text": f"document {i} " * 20} for i in range(10)]

    def step(_: int) -> float:
        body = {"namespace_identifier": ns, "collection_identifier": "docs", "documents": docs}
        return run(app, "collections.documents.write", body)

    return grow(step, total)


def case_ref_moves(app: Environments, total: int) -> tuple[float, float]:
    ns, _ = with_docs(app)
    for name in ("a", "b"):
        retriever = {"namespace_identifier": ns, "retriever_name": name, "stages": [SEARCH]}
        run(app, "retrievers.create", {**retriever, "collection_identifiers": ["docs"]})
    ref = {"namespace_identifier": ns, "ref_name": "live"}
    run(app, "refs.create", {**ref, "target_kind": "retriever", "target": "a"})

    def step(i: int) -> float:
        return run(app, "refs.move", {**ref, "target": "b" if i % 2 == 0 else "a"})

    return grow(step, total)


def case_history(app: Environments, events: int) -> list[tuple[str, float, float]]:
    """Rollback by position and clone as of a position, early (a short log) and late (a
    log of ``events``); with how the log was read for them before (a scan of what came
    after the position), timed on the same log. Early and late each work on a namespace
    and a ref of their own, made alike at the start, so that only the log differs."""
    early_subject, late_subject = subject(app), subject(app)
    filler, _ = with_docs(app)  # the rest of the log: another team's document writes
    write = {"namespace_identifier": filler, "collection_identifier": "docs"}
    write["documents"] = [{"text": "filler"}]
    early = medians(app, *early_subject)
    while timed(app, "collections.documents.write", write)[1] < events:
        pass
    late = medians(app, *late_subject)
    labels = ("refs.rollback by position", "collections.clone as of a position")
    rows = [(label, e, lt) for label, e, lt in zip(labels, early, late, strict=False)]
    return [*rows, ("  before: every data event after it", early[2], late[2])]


def subject(app: Environments) -> tuple[str, int, int]:
    """A namespace with a collection and a ref; where each was created."""
    ns, docs_at = with_docs(app)
    for name in ("a", "b"):
        retriever = {"namespace_identifier": ns, "retriever_name": name, "stages": [SEARCH]}
        run(app, "retrievers.create", {**retriever, "collection_identifiers": ["docs"]})
    ref = {"namespace_identifier": ns, "ref_name": "live"}
    _, ref_at = timed(app, "refs.create", {**ref, "target_kind": "retriever", "target": "a"})
    return ns, docs_at, ref_at


def medians(app: Environments, ns: str, docs_at: int, ref_at: int) -> list[float]:
    ref = {"namespace_identifier": ns, "ref_name": "live"}
    samples = []
    for i in range(SAMPLE):
        run(app, "refs.move", {**ref, "target": "b"})
        rollback = run(app, "refs.rollback", {**ref, "position": ref_at})
        clone = {"namespace_identifier": ns, "collection_identifier": "docs"}
        clone.update(collection_name=f"then-{i}", as_of_position=docs_at)
        as_of = run(app, "collections.clone", clone)
        samples.append((rollback, as_of, scan_after(app, docs_at)))
    return [statistics.median(column) for column in zip(*samples, strict=True)]


def scan_after(app: Environments, position: int) -> float:
    """How data changes were found before: every event of the data topics after it."""
    started = time.perf_counter()
    start = position + 1
    while batch := app.recorder.select_notifications(start, 1000, topics=DATA_TOPICS):
        start = batch[-1].id + 1
    return time.perf_counter() - started


CASES = {
    "collections.create/clone in one namespace": (case_resources, 1),
    "documents.write (10 docs) to one collection": (case_documents, 1),
    "refs.move of one ref": (case_ref_moves, 2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="commands per case")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL, not SQLite")
    parser.add_argument("--events", type=int, default=200_000, help="the log's size for (d)")
    parser.add_argument("--baseline-n", type=int, default=2_000, help="commands, baseline")
    args = parser.parse_args()
    store = "PostgreSQL" if args.postgres else "SQLite"
    print(f"growth: per-command median of {SAMPLE}, early vs late, {store}, N={args.n:,}")
    print(f"  (the variants without the cache run to {args.baseline_n:,} commands)")
    try:
        with tempfile.TemporaryDirectory() as directory:
            app = open_app(args.postgres, "as the processor runs", Path(directory))
            print(f"  (d) on a log growing to {args.events:,} events:")
            for label, early, late in case_history(app, args.events):
                print(
                    f"  {label:<75} early {early * 1000:7.2f} ms  late {late * 1000:7.2f} ms  "
                    f"late/early {late / early:5.2f}"
                )
            app.close()
            for label, (case, divisor) in CASES.items():
                for how in VARIANTS:
                    # Without the cache, late commands cost up to ~0.1 s each: stop sooner.
                    cached = how == "as the processor runs"
                    total = (args.n if cached else min(args.n, args.baseline_n)) // divisor
                    app = open_app(args.postgres, how, Path(directory))
                    early, late = case(app, total)
                    print(
                        f"  {label:<44} {how:<22} {total:>6,}: "
                        f"early {early * 1000:7.2f} ms  late {late * 1000:7.2f} ms  "
                        f"late/early {late / early:5.2f}"
                    )
                    app.close()
    finally:
        if args.postgres:
            drop_schemas()


if __name__ == "__main__":
    main()
