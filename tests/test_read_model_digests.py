"""The read model records a digest of every table at regular positions and at checkpoints."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from application.environments import Environments
from projections.read_model import (
    APPEND_ONLY,
    PROJECTED,
    ReadModel,
    record_digests,
    row_hash,
    table_digests,
)
from projections.read_model.cursor import STORED_TYPES, as_stored, to_column
from projections.sql import Database
from tests.test_domain import SQLITE, envelopes, populated, run
from tests.test_projector_feed import history as feed_history


def history() -> Environments:
    app = Environments(env=SQLITE)
    populated(app)
    run(app, "checkpoints.create", {"reason": "before the clone"})
    run(app, "namespaces.clone", {"namespace_identifier": "prod", "namespace_name": "staging"})
    return app


def test_digests_are_recorded_every_interval_and_at_each_checkpoint(tmp_path: Path) -> None:
    app = history()
    events = envelopes(app)
    model = ReadModel(Database(sqlite_path=tmp_path / "rm.sqlite3"), digest_interval=7)
    model.create()
    model.apply(events)

    checkpoint = next(e.position for e in events if e.type == "Checkpoint.Requested")
    regular = [e.position for e in events if e.position % 7 == 0]
    assert model.digest_positions() == sorted({*regular, checkpoint})
    assert set(model.recorded_digests(checkpoint)) == set(PROJECTED)
    # A recorded digest is the tables as they stood there: the clone came after it.
    assert model.recorded_digests(checkpoint)["namespaces"] != model.digest()["namespaces"]


def test_a_replay_in_other_batches_records_the_same_digests(tmp_path: Path) -> None:
    events = envelopes(history())
    one = ReadModel(Database(sqlite_path=tmp_path / "one.sqlite3"), digest_interval=5)
    other = ReadModel(Database(sqlite_path=tmp_path / "other.sqlite3"), digest_interval=5)
    for model in (one, other):
        model.create()
    one.apply(events)
    for i in range(0, len(events), 3):  # other batches, and each redelivered once
        other.apply(events[i : i + 3])
        other.apply(events[i : i + 3])

    assert one.digest_positions() == other.digest_positions()
    for position in one.digest_positions():
        assert one.recorded_digests(position) == other.recorded_digests(position)


def test_the_kept_digests_of_append_only_tables_equal_a_full_read(tmp_path: Path) -> None:
    model = ReadModel(Database(sqlite_path=tmp_path / "rm.sqlite3"), digest_interval=4)
    model.create()
    events = envelopes(history())
    model.apply(events[:10])
    model.apply(events[10:])

    kept = table_digests(model.db.query)
    assert kept == table_digests(model.db.query, scan_all=True)
    assert {t for t in APPEND_ONLY if kept[t][1] > 0} >= {"audit", "commands", "lineage"}


def test_the_kept_digests_of_every_table_equal_a_full_read_after_every_batch(
    tmp_path: Path,
) -> None:
    """Rows are updated too (renames, ref moves, copy progress): the running sums take
    away what a row was and add what it became, within a batch and across batches."""
    events = feed_history()
    model = ReadModel(Database(sqlite_path=tmp_path / "rm.sqlite3"), digest_interval=5)
    model.create()
    for size in (1, 2, 3, 7):
        model.drop()
        model.create()
        for i in range(0, len(events), size):
            model.apply(events[i : i + size])
            model.apply(events[max(0, i - 1) : i + size])  # redelivered in part
            assert table_digests(model.db.query) == table_digests(model.db.query, scan_all=True)
    updated = {e.type for e in events} & {"Ref.Moved", "CloneTask.CopyProgressed"}
    assert updated == {"Ref.Moved", "CloneTask.CopyProgressed"}


def test_digests_are_recorded_from_the_running_sums_without_reading_the_tables(
    tmp_path: Path,
) -> None:
    model = ReadModel(Database(sqlite_path=tmp_path / "rm.sqlite3"), digest_interval=10**6)
    model.create()
    events = envelopes(history())
    model.apply(events)
    read: list[str] = []
    with model.db.transaction() as cur:
        original = cur.query

        def counted(sql: str, params: Any = ()) -> Any:
            read.append(sql)
            return original(sql, params)

        cur.query = counted  # type: ignore[method-assign]
        record_digests(cur, events[-1].position)
    assert read == ["SELECT * FROM digest_sums"]
    recorded = model.recorded_digests(events[-1].position)
    assert recorded == model.digest()


def test_a_read_model_without_running_digests_starts_them_from_its_rows(tmp_path: Path) -> None:
    model = ReadModel(Database(sqlite_path=tmp_path / "rm.sqlite3"))
    model.create()
    model.apply(envelopes(history()))
    with model.db.transaction() as cur:  # as a read model of an earlier version would be
        cur.execute("DELETE FROM digest_sums")

    ReadModel(model.db).create()

    assert table_digests(model.db.query) == table_digests(model.db.query, scan_all=True)


class Status(StrEnum):  # reads back from a column as a plain str
    READY = "ready"


ODD_ROWS: list[dict[str, Any]] = [
    {},
    {"only": 1},
    {"b": None, "a": 'it\'s "quoted" \\ 100%s', "c": -(2**70)},
    {"z": "é\x00\n\u2028", "k%": (1, "x"), "version": 3, "flag": True, "x": 1.5},
    {"status": Status.READY, "mode": "own"},
]


def test_a_row_hash_is_the_sha256_of_its_items_sorted_whatever_the_values() -> None:
    for row in ODD_ROWS:
        canonical = repr(sorted(row.items())).encode()
        assert row_hash(row) == int.from_bytes(hashlib.sha256(canonical).digest(), "big"), row
        assert row_hash(dict(reversed(row.items()))) == row_hash(row)  # any column order


def test_a_new_row_is_hashed_as_inserted_only_when_it_reads_back_the_same(
    tmp_path: Path,
) -> None:
    db = Database(sqlite_path=tmp_path / "rm.sqlite3")
    ReadModel(db).create()
    plain = {"namespace_id": "ns_1", "namespace_name": "n", "description": "", "version": 1}
    odd = [
        {**plain, "namespace_id": "ns_2", "version": "1"},  # a str in an INTEGER column
        {**plain, "namespace_id": "ns_3", "description": 5},  # an int in a TEXT column
        {**plain, "namespace_id": "ns_4", "version": True},
        {**plain, "namespace_id": "ns_5", "description": Status.READY},
        {**plain, "namespace_id": "ns_6", "version": 1.0},
    ]
    with db.transaction() as cur:
        for row in (plain, *odd):
            marks = ", ".join("?" for _ in row)
            cur.execute(
                f"INSERT INTO namespaces ({', '.join(row)}) VALUES ({marks})", [*row.values()]
            )
    stored = as_stored("namespaces", plain)
    assert stored is not None and list(stored) == list(STORED_TYPES["namespaces"])
    read = db.query("SELECT * FROM namespaces WHERE namespace_id = 'ns_1'")[0]
    assert stored == read and row_hash(stored) == row_hash(read)
    assert all(as_stored("namespaces", row) is None for row in odd)
    assert set(STORED_TYPES) == set(PROJECTED)


def test_json_columns_are_written_as_json_dumps_sorted_writes_them() -> None:
    values: list[Any] = [
        {"b": [1, 2.5, None, True, float("inf")], "a": {"é": "\u2028", "n": -(2**70)}},
        [],
        {},
        [{"z": 1, "y": {"x": "it's"}}],
    ]
    for value in values:
        assert to_column(value) == json.dumps(value, sort_keys=True)
    assert to_column("text") == "text" and to_column(None) is None and to_column(3) == 3
