"""Group commit: a run of commands decided in memory and stored in one transaction.

On a real SQLite event store; the processor's use of it (DLQ, fallback to smaller
batches, kill -9 inside the transaction) is tested in test_poison.py and
test_crash_recovery.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from application.environments import Environments, Outcome
from application.group_commit import Pending
from consumers.relay import envelope_bytes
from contract.commands import command_from_document
from domain.envelopes import envelope_of
from domain.errors import CommandRejected, ErrorCode
from domain.namespace import Namespace, NamespaceName
from tests.scenario import clones, production
from tests.support import command

TRACKING = "cluster/envbranch.commands#0"


@pytest.fixture
def app(tmp_path: Path) -> Environments:
    return Environments(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "e.db")}
    )


def pending(documents: list[dict[str, Any]], first_offset: int = 0) -> list[Pending]:
    return [
        (command_from_document(d), Tracking(TRACKING, first_offset + i + 1))
        for i, d in enumerate(documents)
    ]


def store(
    app: Environments, documents: list[dict[str, Any]], first_offset: int = 0
) -> list[Outcome | CommandRejected]:
    """Decide and commit batches until every command is consumed; the results in order."""
    results: list[Outcome | CommandRejected] = []
    batch = pending(documents, first_offset)
    while batch:
        decided = app.decide(batch)
        results.extend(app.commit(decided))
        batch = batch[decided.consumed :]
    return results


def receipts(app: Environments) -> list[str]:
    topic = "domain.aggregates:CommandReceipt.Accepted"
    found = app.recorder.select_notifications(1, 10**6, topics=[topic])
    return [app.mapper.to_domain_event(n).command_id for n in found]


def bucket_ids(app: Environments, name: str) -> dict[str, str]:
    """Bucket name -> ID in the namespace named ``name``, as the store has it."""
    claim = app.repository.get(NamespaceName.id_for(name))
    namespace = app.repository.get(claim.claimed_by)
    assert isinstance(namespace, Namespace)
    return dict(namespace.names["bucket"])


def bucket(ns: str, name: str) -> dict[str, Any]:
    return command(
        "buckets.create",
        {"namespace_identifier": ns, "bucket_name": name, "bucket_schema": {"properties": {}}},
    )


def test_a_batch_is_one_transaction_whose_tracking_record_is_its_last_position(
    app: Environments,
) -> None:
    documents = [command("namespaces.create", {"namespace_name": f"ns-{i}"}) for i in range(50)]
    decided = app.decide(pending(documents))
    assert decided.consumed == 50
    assert app.recorder.max_notification_id() is None, "nothing is stored before commit"
    outcomes = app.commit(decided)
    assert app.last_position(TRACKING) == 50
    assert receipts(app) == [d["command_id"] for d in documents]
    assert all(isinstance(o, Outcome) and len(o.positions) == 3 for o in outcomes)
    positions = [p for o in outcomes if isinstance(o, Outcome) for p in o.positions]
    assert positions == list(range(1, 151))


def test_later_commands_of_a_batch_see_what_earlier_ones_did(app: Environments) -> None:
    documents = [
        command("namespaces.create", {"namespace_name": "prod"}),
        bucket("prod", "raw"),
        bucket("prod", "more"),
        bucket("prod", "raw"),  # the name was taken two commands earlier, same batch
    ]
    results = store(app, documents)
    assert [type(r) for r in results[:3]] == [Outcome] * 3
    assert isinstance(results[3], CommandRejected)
    assert results[3].code == ErrorCode.DUPLICATE_NAME
    assert sorted(bucket_ids(app, "prod")) == ["more", "raw"]


def test_a_rejected_command_does_not_poison_its_batch(app: Environments) -> None:
    documents = [
        command("namespaces.create", {"namespace_name": "a"}),
        bucket("missing", "raw"),  # rejected before it changed anything
        bucket("a", "raw"),
        command("namespaces.create", {"namespace_name": "b"}),
    ]
    decided = app.decide(pending(documents))
    assert decided.consumed == 4, "a clean rejection does not end the batch"
    results = app.commit(decided)
    assert isinstance(results[1], CommandRejected) and results[1].code == ErrorCode.NOT_FOUND
    assert receipts(app) == [documents[i]["command_id"] for i in (0, 2, 3)]
    assert app.last_position(TRACKING) == 4


def test_a_command_rejected_after_it_changed_state_ends_the_batch_and_leaves_no_trace(
    app: Environments,
) -> None:
    app.max_event_bytes = 4096  # an object too large for one event: rejected late
    objects = {"namespace_identifier": "prod", "bucket_identifier": "raw"}
    big = "x" * 8000
    documents = [
        command("namespaces.create", {"namespace_name": "prod"}),
        bucket("prod", "raw"),
        command("buckets.objects.add", {**objects, "objects": [{"key": "big", "text": big}]}),
        command("buckets.objects.add", {**objects, "objects": [{"key": "small", "text": "y"}]}),
    ]
    decided = app.decide(pending(documents))
    assert decided.consumed == 3, "the batch ends with the command that failed late"
    results = app.commit(decided)
    assert isinstance(results[2], CommandRejected)
    assert results[2].code == ErrorCode.MESSAGE_TOO_LARGE
    rest = app.commit(app.decide(pending(documents[3:], first_offset=3)))
    assert isinstance(rest[0], Outcome)
    raw = app.repository.get(bucket_ids(app, "prod")["raw"])
    assert sorted(raw.object_keys) == ["small"], "the rejected object left nothing behind"
    assert receipts(app) == [documents[i]["command_id"] for i in (0, 1, 3)]


def test_the_same_command_twice_in_a_batch_is_applied_once(app: Environments) -> None:
    first = command("namespaces.create", {"namespace_name": "once"}, command_id="same")
    reused = command("namespaces.create", {"namespace_name": "other"}, command_id="same")
    results = store(app, [first, first, reused])
    assert isinstance(results[0], Outcome) and not results[0].duplicate
    assert results[1] == Outcome(positions=[], duplicate=True)
    assert isinstance(results[2], CommandRejected)
    assert results[2].code == ErrorCode.COMMAND_ID_REUSED
    assert receipts(app) == ["same"]


def test_a_command_that_reads_log_positions_starts_a_new_batch(app: Environments) -> None:
    ns = {"namespace_identifier": "prod"}
    stages = [{"stage_name": "s", "config": {"stage_id": "feature_search", "parameters": {}}}]
    setup = [
        command("namespaces.create", {"namespace_name": "prod"}),
        bucket("prod", "b"),
        command(
            "collections.create",
            {
                **ns,
                "collection_name": "c",
                "source": {"type": "bucket", "bucket_ids": ["b"]},
                "feature_extractor": {"feature_extractor_name": "text_extractor"},
            },
        ),
        *[
            command(
                "retrievers.create",
                {**ns, "retriever_name": r, "collection_identifiers": ["c"], "stages": stages},
            )
            for r in ("r1", "r2")
        ],
    ]
    store(app, setup)
    ref = {**ns, "ref_name": "live"}
    documents = [
        command("refs.create", {**ref, "target_kind": "retriever", "target": "r1"}),
        command("refs.move", {**ref, "target": "r2"}),
        command("refs.rollback", {**ref, "position": 10**6}),  # reads the ref's log positions
        command("namespaces.create", {"namespace_name": "after"}),
    ]
    decided = app.decide(pending(documents, first_offset=len(setup)))
    assert decided.consumed == 2, "the batch ends before the rollback"
    app.commit(decided)
    results = store(app, documents[2:], first_offset=len(setup) + 2)
    # At the end of the log the ref points at r2 already: nothing to roll back to.
    assert isinstance(results[0], CommandRejected), results[0]
    assert isinstance(results[1], Outcome)
    assert len(receipts(app)) == len(setup) + 3


def test_a_batch_whose_transaction_fails_leaves_memory_as_the_store_has_it(
    app: Environments, tmp_path: Path
) -> None:
    store(app, [command("namespaces.create", {"namespace_name": "prod"})])
    other = Environments(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "e.db")}
    )
    decided = app.decide(pending([bucket("prod", "mine")], first_offset=1))
    other.execute(command_from_document(bucket("prod", "theirs")))  # takes the next version
    with pytest.raises(IntegrityError):
        app.commit(decided)
    # Nothing of the failed batch stayed in memory: the next batch sees the store's state.
    results = app.commit(app.decide(pending([bucket("prod", "mine")], first_offset=1)))
    assert isinstance(results[0], Outcome)
    assert sorted(bucket_ids(app, "prod")) == ["mine", "theirs"]


def test_the_relay_writes_the_same_envelope_bytes_as_through_the_domain_event(
    app: Environments,
) -> None:
    documents = [*production(), *clones()]
    text = 'ünïcødé ✓ "quoted" \\ back\nslash'
    documents.append(command("namespaces.create", {"namespace_name": "u-1", "description": text}))
    small = {"stage_name": "s", "config": {"stage_id": "feature_search", "parameters": {}}}
    small["config"]["parameters"] = {"threshold": 1e-05, "weight": 0.5, "big": 1e300}
    documents.append(
        command(
            "retrievers.create",
            {
                "namespace_identifier": "prod",
                "retriever_name": "floats",
                "collection_identifiers": ["docs-text"],
                "stages": [small],
            },
        )
    )
    results = store(app, documents)
    assert isinstance(results[-1], Outcome), results[-1]
    notifications = app.recorder.select_notifications(1, 10**6)
    assert len(notifications) > 30
    for notification in notifications:
        general = envelope_of(notification.id, app.mapper.to_domain_event(notification))
        assert envelope_bytes(notification, app.mapper) == general.to_bytes()
