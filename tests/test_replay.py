"""`envbranch replay`: rebuild the read model from the event store and prove it equal.

One long history is written through the SDK on the session's live stack, with five
checkpoints in it; each checkpoint is then replayed and verified table by table.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest

from application.environments import Environments
from envbranch import Client
from envbranch.bootstrap import open_event_store, read_model_database
from envbranch.cli import main as cli_main
from envbranch.replay import (
    ProgressBar,
    ReplayError,
    envelopes,
    replay,
    resolve_until,
)
from envbranch.settings import Settings
from projections.read_model import ReadModel
from projections.read_model.schema import INDEX_NAMES
from projections.sql import Database
from tests.conftest import LiveStack

TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
SEARCH = {"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": {}}}
MAPPINGS = [{"input_key": "query", "source_type": "payload", "path": "text"}]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def documents(ids: range, prefix: str = "doc") -> list[dict[str, Any]]:
    return [
        {"document_id": f"{prefix}{i}", "text": f"{prefix} number {i}", "payload": {"n": i}}
        for i in ids
    ]


@dataclass
class History:
    namespace: str
    checkpoints: list[int]
    settings: Settings
    env: dict[str, str]


def build_history(client: Client) -> tuple[str, list[int]]:
    """A namespace's whole life: every kind, clones, document writes and deletes, refs
    created, moved and rolled back, a namespace clone; five checkpoints on the way."""
    ns = unique("replay")
    checkpoints = []
    client.namespaces.create({"namespace_name": ns, "description": "to be replayed"})
    client.buckets.create(
        {"bucket_name": "docs", "bucket_schema": {"properties": {"text": {"type": "text"}}}},
        namespace=ns,
    )
    client.collections.create(
        {
            "collection_name": "docs",
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "feature_extractor": TEXT,
        },
        namespace=ns,
    )
    checkpoints.append(client.checkpoint("after the first resources").position)

    client.retrievers.create(
        {"retriever_name": "search", "collection_identifiers": ["docs"], "stages": [SEARCH]},
        namespace=ns,
    )
    client.collections.write_documents("docs", documents(range(12)), namespace=ns)
    client.collections.clone("docs", {"collection_name": "docs-2"}, namespace=ns)
    client.retrievers.clone(
        "search",
        {"retriever_name": "search-2", "collection_identifiers": ["docs-2"]},
        namespace=ns,
    )
    client.collections.delete_documents("docs", ["doc1", "doc2"], namespace=ns)
    checkpoint = client.checkpoint("after clones and a delete").position
    checkpoints.append(checkpoint)

    client.taxonomies.create(
        {
            "taxonomy_name": "topics",
            "config": {
                "taxonomy_type": "flat",
                "retriever_id": "search",
                "input_mappings": MAPPINGS,
                "source_collection": {"collection_id": "docs", "enrichment_fields": []},
            },
        },
        namespace=ns,
    )
    client.taxonomies.clone("topics", {"taxonomy_name": "topics-2"}, namespace=ns)
    client.collections.write_documents("docs-2", documents(range(3), "extra"), namespace=ns)
    client.collections.delete_documents("docs-2", ["doc5"], namespace=ns)
    client.refs.create(
        {"ref_name": "production", "target_kind": "retriever", "target": "search"}, namespace=ns
    )
    checkpoints.append(client.checkpoint("after the ref").position)

    client.refs.move("production", {"target": "search-2"}, namespace=ns)
    client.refs.rollback("production", {"to": "previous"}, namespace=ns)
    client.namespaces.update(ns, {"description": "replayed, changed"})
    started = client.namespaces.clone(ns, {"namespace_name": f"{ns}-staging"})
    assert client.tasks.wait(started.task_id, timeout=60).status == "COMPLETED"
    checkpoints.append(client.checkpoint("after the namespace clone").position)

    staging = f"{ns}-staging"
    client.collections.delete_documents("docs", ["doc3", "doc4"], namespace=staging)
    client.collections.write_documents("docs", documents(range(2), "late"), namespace=staging)
    client.refs.move("production", {"target": "search-2", "reason": "again"}, namespace=ns)
    client.retrievers.update("search", {"description": "the old one"}, namespace=ns)
    checkpoints.append(client.checkpoint("at the end").position)
    return ns, checkpoints


@pytest.fixture(scope="module")
def history(live_stack: LiveStack) -> History:
    with live_stack.client() as client:
        ns, checkpoints = build_history(client)
    settings = Settings.from_env(live_stack.env)
    return History(ns, checkpoints, settings, live_stack.env)


@pytest.fixture
def app(history: History) -> Iterator[Environments]:
    store = open_event_store(history.settings)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def live(history: History) -> Iterator[ReadModel]:
    db = read_model_database(history.settings)
    try:
        yield ReadModel(db, history.settings.digest_interval)
    finally:
        db.close()


@pytest.fixture
def cli_env(history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's environment for `envbranch` commands run in this process."""
    for name in list(os.environ):
        if name.startswith(("ENVBRANCH_", "KAFKA_")):
            monkeypatch.delenv(name)
    for name, value in history.env.items():
        if name.startswith(("ENVBRANCH_", "KAFKA_")):
            monkeypatch.setenv(name, value)


def progress_into(seen: list[tuple[int, int]]) -> Callable[[int, int], None]:
    return lambda done, total: seen.append((done, total))


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- every checkpoint replays equal -------------------------------------------------------


def test_every_checkpoint_replays_to_an_equal_read_model(
    history: History, app: Environments, live: ReadModel, tmp_path: Path
) -> None:
    assert len(set(history.checkpoints)) == 5
    assert history.checkpoints == sorted(history.checkpoints)
    recorded = live.digest_positions()
    for position in history.checkpoints:
        assert position in recorded

        seen: list[tuple[int, int]] = []
        into = tmp_path / f"at-{position}"
        report = replay(app, into, position, live, progress_into(seen))

        assert report.ok, report.mismatches
        assert report.until == position
        assert report.events_applied == len(list(envelopes(app, 1, position)))
        assert report.verified_positions == [p for p in recorded if p <= position]
        assert report.verified_positions[-1] == position
        assert seen[-1] == (position, position)
        rebuilt = ReadModel(Database(sqlite_path=into / "read_model.sqlite3"))
        assert rebuilt.position() == position
        assert rebuilt.recorded_digests(position) == live.recorded_digests(position)
        # rebuilt as a catch-up: it ends caught up, with the indexes it left out while applying
        assert not rebuilt.catching_up()
        made = {r["name"] for r in rebuilt.db.query("SELECT name FROM sqlite_master")}
        assert set(INDEX_NAMES) <= made
        rebuilt.db.close()


def test_the_replay_command_verifies_a_checkpoint_in_a_separate_process(
    history: History, tmp_path: Path
) -> None:
    position = history.checkpoints[2]
    into = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-m", "envbranch", "replay", "--until", str(position), "--verify"]
        + ["--into", str(into)],
        env=history.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"positions 1..{position}) into {into}" in done.stdout
    assert "every table equal" in done.stdout
    verified = done.stdout.split("verified positions [", 1)[1].split("]", 1)[0]
    assert str(position) in verified.split(", ")
    assert (into / "read_model.sqlite3").exists()


def test_the_replay_command_defaults_to_the_latest_digest_under_the_data_dir(
    history: History, live: ReadModel, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    latest = live.digest_positions()[-1]
    assert cli_main(["replay", "--verify", "--progress"]) == 0
    out, err = capsys.readouterr()
    assert "every table equal" in out
    assert f"positions 1..{latest})" in out
    into = Path(out.split(" into ", 1)[1].split("\n", 1)[0])
    assert into.parent == history.settings.data_dir / "replays"
    assert into.name.startswith(f"{latest}-")
    assert f"100%  {latest}/{latest} events" in err


# --- what a replay refuses ----------------------------------------------------------------


def test_verify_at_a_position_without_a_digest_names_the_nearest_ones(
    history: History, live: ReadModel, cli_env: None, tmp_path: Path, capsys: Any
) -> None:
    recorded = live.digest_positions()
    first, second = history.checkpoints[0], history.checkpoints[1]
    position = next(p for p in range(first + 1, second) if p not in recorded)
    below = max(p for p in recorded if p < position)
    above = min(p for p in recorded if p > position)
    into = tmp_path / "nothing"

    code = cli_main(["replay", "--until", str(position), "--verify", "--into", str(into)])

    assert code == 2
    err = capsys.readouterr().err
    assert f"no digest at position {position}" in err
    assert f"nearest recorded positions: {below} below, {above} above" in err
    assert "envbranch checkpoint" in err
    assert not into.exists()  # it failed before replaying anything


def test_an_into_that_holds_a_read_model_is_refused_and_left_untouched(
    history: History, app: Environments, live: ReadModel, cli_env: None, tmp_path: Path, capsys: Any
) -> None:
    into = tmp_path / "taken"
    first = history.checkpoints[0]
    replay(app, into, first, None, None)
    before = file_digest(into / "read_model.sqlite3")

    with pytest.raises(ReplayError, match="already holds a read model"):
        replay(app, into, history.checkpoints[1], live, None)
    code = cli_main(["replay", "--until", str(first), "--into", str(into)])

    assert code == 2
    assert "already holds a read model" in capsys.readouterr().err
    assert file_digest(into / "read_model.sqlite3") == before
    assert ReadModel(Database(sqlite_path=into / "read_model.sqlite3")).position() == first


def copy_sqlite(source_path: Path, target_path: Path) -> sqlite3.Connection:
    """A consistent copy of a database another process is writing (WAL included)."""
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    target = sqlite3.connect(target_path)
    source.backup(target)
    source.close()
    return target


def test_a_tampered_live_digest_is_reported_as_a_mismatch_naming_its_table(
    history: History, app: Environments, live: ReadModel, tmp_path: Path
) -> None:
    position = history.checkpoints[3]
    copy = tmp_path / "live-copy.sqlite3"
    target = copy_sqlite(history.settings.data_dir / "read_model.sqlite3", copy)
    target.execute(
        "UPDATE digests SET digest = ? WHERE position = ? AND table_name = 'ref_history'",
        ["0" * 64, position],
    )
    target.commit()
    target.close()
    tampered = ReadModel(Database(sqlite_path=copy))

    report = replay(app, tmp_path / "tampered", position, tampered, None)

    assert not report.ok
    assert [(m.position, m.table, m.live_digest) for m in report.mismatches] == [
        (position, "ref_history", "0" * 64)
    ]
    assert report.mismatches[0].rebuilt_digest == live.recorded_digests(position)["ref_history"]
    assert position in report.verified_positions
    tampered.db.close()


def test_the_replay_command_exits_1_and_names_the_mismatching_table(
    history: History, cli_env: None, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A data dir whose read model is a tampered copy, next to the real event store.
    data = tmp_path / "data"
    data.mkdir()
    live_dir = history.settings.data_dir
    target = copy_sqlite(live_dir / "read_model.sqlite3", data / "read_model.sqlite3")
    target.execute(
        "UPDATE digests SET digest = 'x' WHERE position = ? AND table_name = 'namespaces'",
        [history.checkpoints[0]],
    )
    target.commit()
    target.close()
    copy_sqlite(live_dir / "events.sqlite3", data / "events.sqlite3").close()
    monkeypatch.setenv("ENVBRANCH_DATA_DIR", str(data))

    code = cli_main(["replay", "--until", str(history.checkpoints[1]), "--verify"])

    assert code == 1
    out = capsys.readouterr().out
    assert f"MISMATCH at position {history.checkpoints[0]}: table namespaces (live x," in out
    assert "every table equal" not in out


# --- --until ------------------------------------------------------------------------------


def test_until_takes_a_position_a_time_or_nothing(history: History, app: Environments) -> None:
    last = app.recorder.max_notification_id() or 0
    assert resolve_until(app, None) >= last >= history.checkpoints[4]
    assert resolve_until(app, str(history.checkpoints[2])) == history.checkpoints[2]
    events = list(envelopes(app, 1, history.checkpoints[4]))
    at = events[history.checkpoints[3] - 1]
    assert at.position == history.checkpoints[3]
    moment = at.occurred_at
    # The last position of the prefix that occurred at or before the time.
    expected = max(e.position for e in events if e.occurred_at <= moment)
    assert resolve_until(app, moment.isoformat()) == expected >= history.checkpoints[3]
    as_z = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert resolve_until(app, as_z) == expected
    later = (moment + timedelta(days=3650)).isoformat()
    # The stack may append meanwhile (another test's copy progress): the log's end then.
    assert last <= resolve_until(app, later) <= (app.recorder.max_notification_id() or 0)


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("yesterday", "a position (digits) or an ISO-8601 time"),
        ("-3", "a position (digits) or an ISO-8601 time"),
        ("0", "positions start at 1"),
        ("2025-01-31T12:00:00", "has no timezone"),
        ("99999999", "beyond the end of the event log"),
        ("2001-01-01T00:00:00+00:00", "before the first event"),
    ],
)
def test_until_errors_are_sentences(app: Environments, until: str, message: str) -> None:
    with pytest.raises(ReplayError, match=re.escape(message)):
        resolve_until(app, until)


def test_verify_refuses_a_position_the_live_model_has_not_reached(
    history: History, app: Environments, tmp_path: Path
) -> None:
    # A live model that stopped at the second checkpoint, copied as it stood.
    copy = tmp_path / "behind.sqlite3"
    behind = ReadModel(Database(sqlite_path=copy))
    behind.create()
    behind.apply(envelopes(app, 1, history.checkpoints[1]))
    with pytest.raises(ReplayError, match="has not reached position"):
        replay(app, tmp_path / "ahead", history.checkpoints[2], behind, None)
    assert not (tmp_path / "ahead").exists()
    behind.db.close()


def test_the_progress_bar_is_plain_text() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, width=10)
    bar(5200, 10000)
    bar(5200, 10000)  # unchanged: not written again
    bar(10000, 10000)
    assert out.getvalue() == (
        "\r[#####-----]  52%  5200/10000 events\r[##########] 100%  10000/10000 events\n"
    )


def test_the_bad_input_exit_code_is_2(cli_env: None, capsys: Any) -> None:
    assert cli_main(["replay", "--until", "not-a-time"]) == 2
    assert "ISO-8601" in capsys.readouterr().err
