"""What recording digests costs the read model, and how fast a replay rebuilds it.

Writes a history of N namespaces (a bucket, a collection, a retriever, a ref and
its moves each) into an in-memory SQLite event store, then applies the whole log
to fresh SQLite read models three times in the same process:

- baseline: no digest recorded (interval larger than the log);
- every 1000 positions (the default) and every 100 positions.

A digest records the running sums of the tables (projections/read_model/digests.py):
it writes the rows the batch has added so far and hashes the rows it changed, and does
not read the tables, so its cost does not grow with the read model; the ratios say
what the default interval costs.

    python bench/replay.py [--namespaces 1000]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import machine

from application.environments import Environments
from contract.commands import command_from_document
from domain.envelopes import envelope_of
from projections.read_model import ReadModel
from projections.sql import Database

SQLITE = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}
STAGES = [{"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": {}}}]
_ids = itertools.count()


def run(app: Environments, type_: str, body: dict[str, Any]) -> None:
    document = {"command_id": f"c{next(_ids)}", "type": type_, "body": body, "actor": "bench"}
    app.execute(command_from_document(document))


def history(namespaces: int) -> Environments:
    app = Environments(env=SQLITE)
    for i in range(namespaces):
        ns = f"ns-{i}"
        run(app, "namespaces.create", {"namespace_name": ns})
        run(
            app,
            "buckets.create",
            {"namespace_identifier": ns, "bucket_name": "b", "bucket_schema": {"properties": {}}},
        )
        run(
            app,
            "collections.create",
            {
                "namespace_identifier": ns,
                "collection_name": "c",
                "source": {"type": "bucket", "bucket_ids": ["b"]},
                "feature_extractor": {"feature_extractor_name": "text_extractor"},
            },
        )
        for name in ("r1", "r2"):
            run(
                app,
                "retrievers.create",
                {
                    "namespace_identifier": ns,
                    "retriever_name": name,
                    "collection_identifiers": ["c"],
                    "stages": STAGES,
                },
            )
        ref = {"namespace_identifier": ns, "ref_name": "live"}
        run(app, "refs.create", {**ref, "target_kind": "retriever", "target": "r1"})
        run(app, "refs.move", {**ref, "target": "r2"})
        run(app, "refs.rollback", {**ref, "to": "previous"})
    return app


def rebuild(events: list[Any], directory: Path, interval: int) -> tuple[float, int]:
    model = ReadModel(Database(sqlite_path=directory / f"rm-{interval}.sqlite3"), interval)
    model.create()
    start = time.perf_counter()
    for page in range(0, len(events), 500):
        model.apply(events[page : page + 500])
    return time.perf_counter() - start, len(model.digest_positions())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespaces", type=int, default=1000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    app = history(args.namespaces)
    notifications = app.recorder.select_notifications(1, 10**9)
    events = [envelope_of(n.id, app.mapper.to_domain_event(n)) for n in notifications]
    print(f"history: {args.namespaces} namespaces, {len(events)} events")
    with tempfile.TemporaryDirectory() as tmp:
        base, _ = rebuild(events, Path(tmp), len(events) + 1)
        print(f"baseline (no digests): {len(events) / base:,.0f} events/s")
        for interval in (1000, 100):
            took, digests = rebuild(events, Path(tmp), interval)
            print(
                f"digest every {interval:>4}: {len(events) / took:,.0f} events/s, {digests} "
                f"digests, time {took / base:.2f}x the baseline"
            )


if __name__ == "__main__":
    main()
