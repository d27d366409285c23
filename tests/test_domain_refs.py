"""Pure tests of refs, evaluations and the promotion gate (in-memory SQLite event store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.environments import Environments
from domain.errors import ErrorCode
from domain.ids import Kind
from domain.quality import Evaluation
from domain.refs import Ref
from tests.test_domain import (
    SEARCH,
    SQLITE,
    create_retriever,
    namespace,
    populated,
    rejected,
    resource,
    run,
)

RERANK = {"stage_name": "rerank", "config": {"stage_id": "rerank", "parameters": {}}}
QUERIES = [{"query_id": "q1", "inputs": {"query": "heap"}, "judgments": {"heapq.heappush": 1}}]
RELATIVE = {"thresholds": [{"metric": "ndcg@10", "min_change": -0.01}]}


@pytest.fixture
def app() -> Environments:
    return Environments(env=SQLITE)


def ref(app: Environments, ns: str, name: str) -> Ref:
    found = app.repository.get(Ref.id_for(namespace(app, ns).id, name))
    assert isinstance(found, Ref)
    return found


def retriever_id(app: Environments, name: str, ns: str = "prod") -> str:
    return str(resource(app, ns, Kind.RETRIEVER, name).id)


def three_retrievers(app: Environments) -> tuple[str, str, str]:
    populated(app)
    create_retriever(app, "prod", "search-v2", ["docs"], stages=[SEARCH, RERANK])
    create_retriever(app, "prod", "search-v3", ["docs"])
    return (
        retriever_id(app, "search"),
        retriever_id(app, "search-v2"),
        retriever_id(app, "search-v3"),
    )


def create_ref(app: Environments, target: str = "search", name: str = "production") -> None:
    body = {"namespace_identifier": "prod", "ref_name": name, "target_kind": "retriever"}
    run(app, "refs.create", {**body, "target": target, "reason": "first release"})


def move(app: Environments, target: str, name: str = "production") -> None:
    body = {"namespace_identifier": "prod", "ref_name": name, "target": target}
    run(app, "refs.move", body)


def rollback(app: Environments, **how: Any) -> None:
    body = {"namespace_identifier": "prod", "ref_name": "production", **how}
    run(app, "refs.rollback", body)


def evaluation_set(app: Environments) -> None:
    body = {
        "namespace_identifier": "prod",
        "evaluation_set_name": "golden",
        "set_type": "retriever",
        "id_field": "key",
        "queries": QUERIES,
    }
    run(app, "evaluation_sets.create", body)


def record(app: Environments, runs: list[tuple[str, float]]) -> str:
    evaluation_set(app) if namespace(app, "prod").find(
        Kind.EVALUATION_SET, "golden"
    ) is None else None
    body = {
        "namespace_identifier": "prod",
        "evaluation_set_identifier": "golden",
        "k": 10,
        "runs": [{"target_id": t, "metrics": {"ndcg@10": v}} for t, v in runs],
    }
    outcome = run(app, "evaluations.record", body)
    created = app.recorder.select_notifications(outcome.positions[0], 1)[0]
    assert created.originator_id.startswith("eval_")
    evaluation = app.repository.get(created.originator_id)
    assert isinstance(evaluation, Evaluation)
    return evaluation.id


def promote(app: Environments, candidate: str, evaluation_id: str, gate: dict = RELATIVE) -> None:
    body = {
        "namespace_identifier": "prod",
        "ref_name": "production",
        "candidate": candidate,
        "evaluation_id": evaluation_id,
        "gate": gate,
    }
    run(app, "refs.promote", body)


# --- refs -------------------------------------------------------------------------


def test_a_ref_points_at_a_resource_named_in_its_namespace_and_keeps_its_history(app):
    v1, v2, _ = three_retrievers(app)
    create_ref(app)
    move(app, "search-v2")

    production = ref(app, "prod", "production")
    assert production.target_id == v2
    assert [(e["action"], e["target_id"]) for e in production.history] == [
        ("create", v1),
        ("move", v2),
    ]
    assert production.history[0]["reason"] == "first release"


def test_a_ref_name_is_unique_within_its_namespace(app):
    three_retrievers(app)
    create_ref(app)
    body = {"namespace_identifier": "prod", "ref_name": "production", "target_kind": "retriever"}
    error = rejected(app, "refs.create", {**body, "target": "search-v2"})
    assert error.code is ErrorCode.DUPLICATE_NAME and error.field == "body.ref_name"


def test_a_ref_refuses_a_target_of_another_kind(app):
    three_retrievers(app)
    create_ref(app)
    collection = resource(app, "prod", Kind.COLLECTION, "docs").id
    error = rejected(
        app,
        "refs.move",
        {"namespace_identifier": "prod", "ref_name": "production", "target": collection},
    )
    assert error.code is ErrorCode.WRONG_KIND and error.field == "body.target"


def test_moving_a_ref_to_where_it_points_is_refused(app):
    three_retrievers(app)
    create_ref(app)
    error = rejected(
        app,
        "refs.move",
        {"namespace_identifier": "prod", "ref_name": "production", "target": "search"},
    )
    assert error.code is ErrorCode.NOTHING_TO_DO


# --- rollback ---------------------------------------------------------------------


def test_rollback_to_previous_restores_the_earlier_target_and_can_itself_be_rolled_back(app):
    v1, v2, _ = three_retrievers(app)
    create_ref(app)
    move(app, "search-v2")

    rollback(app, to="previous")
    assert ref(app, "prod", "production").target_id == v1
    rollback(app, to="previous")
    assert ref(app, "prod", "production").target_id == v2
    assert [e["action"] for e in ref(app, "prod", "production").history] == [
        "create",
        "move",
        "rollback",
        "rollback",
    ]


def test_rollback_by_position_restores_the_target_the_ref_had_at_that_position(app):
    v1, v2, v3 = three_retrievers(app)
    create_ref(app)
    at_v1 = app.recorder.max_notification_id()
    move(app, "search-v2")
    at_v2 = app.recorder.max_notification_id()
    move(app, "search-v3")

    rollback(app, position=at_v2)
    assert ref(app, "prod", "production").target_id == v2
    rollback(app, position=at_v1)
    assert ref(app, "prod", "production").target_id == v1
    assert ref(app, "prod", "production").history[-1]["action"] == "rollback"


def test_rollback_by_position_before_the_ref_existed_is_refused(app):
    three_retrievers(app)
    before = app.recorder.max_notification_id()
    create_ref(app)
    move(app, "search-v2")
    error = rejected(
        app,
        "refs.rollback",
        {"namespace_identifier": "prod", "ref_name": "production", "position": before},
    )
    assert error.code is ErrorCode.NOTHING_TO_DO and "did not exist" in error.message


def test_rollback_by_time_restores_the_target_in_force_at_that_moment(app):
    v1, v2, _ = three_retrievers(app)
    create_ref(app)
    move(app, "search-v2")
    move(app, "search-v3")
    moved_to_v2 = ref(app, "prod", "production").history[1]["at"]

    rollback(app, time=(moved_to_v2 + timedelta(microseconds=1)).isoformat())
    assert ref(app, "prod", "production").target_id == v2
    rollback(app, time=(moved_to_v2 - timedelta(microseconds=1)).isoformat())
    assert ref(app, "prod", "production").target_id == v1


def test_a_rollback_names_exactly_one_way_to_choose_the_target(app):
    three_retrievers(app)
    create_ref(app)
    body = {"namespace_identifier": "prod", "ref_name": "production"}
    error = rejected(app, "refs.rollback", {**body, "to": "previous", "position": 3})
    assert error.code is ErrorCode.VALIDATION_ERROR
    error = rejected(app, "refs.rollback", body)
    assert error.code is ErrorCode.VALIDATION_ERROR
    naive = datetime.now(UTC).replace(tzinfo=None).isoformat()
    error = rejected(app, "refs.rollback", {**body, "time": naive})
    assert "timezone" in error.message


def test_rollback_of_a_ref_that_never_moved_is_refused(app):
    three_retrievers(app)
    create_ref(app)
    body = {"namespace_identifier": "prod", "ref_name": "production", "to": "previous"}
    assert rejected(app, "refs.rollback", body).code is ErrorCode.NOTHING_TO_DO


# --- promotion gate -----------------------------------------------------------------


def test_a_promotion_whose_gate_fails_leaves_the_ref_and_records_which_metric_failed(app):
    v1, v2, _ = three_retrievers(app)
    create_ref(app)
    evaluation_id = record(app, [(v2, 0.58), (v1, 0.61)])

    promote(app, "search-v2", evaluation_id)

    production = ref(app, "prod", "production")
    assert production.target_id == v1
    events = app.repository.event_store.get(production.id)
    refused = [e for e in events if isinstance(e, Ref.PromotionRefused)]
    assert len(refused) == 1
    (failure,) = refused[0].failures
    assert failure["metric"] == "ndcg@10" and failure["rule"] == "min_change"
    assert failure["candidate"] == 0.58 and failure["baseline"] == 0.61


def test_a_promotion_whose_gate_holds_moves_the_ref_with_its_evaluation(app):
    v1, v2, _ = three_retrievers(app)
    create_ref(app)
    evaluation_id = record(app, [(v2, 0.605), (v1, 0.61)])  # -0.82%: within -1%

    promote(app, "search-v2", evaluation_id)

    production = ref(app, "prod", "production")
    assert production.target_id == v2
    assert production.history[-1]["action"] == "promote"


def test_a_promotion_on_an_evaluation_of_another_baseline_is_stale(app):
    v1, v2, v3 = three_retrievers(app)
    create_ref(app)
    evaluation_id = record(app, [(v2, 0.9), (v3, 0.5)])
    body = {
        "namespace_identifier": "prod",
        "ref_name": "production",
        "candidate": "search-v2",
        "evaluation_id": evaluation_id,
        "gate": RELATIVE,
    }
    error = rejected(app, "refs.promote", body)
    assert error.code is ErrorCode.STALE_EVALUATION and v1 in error.message


def test_an_absolute_gate_needs_no_baseline(app):
    _, v2, _ = three_retrievers(app)
    create_ref(app)
    evaluation_id = record(app, [(v2, 0.7)])
    promote(app, "search-v2", evaluation_id, {"thresholds": [{"metric": "ndcg@10", "min": 0.5}]})
    assert ref(app, "prod", "production").target_id == v2


def test_a_threshold_without_a_rule_is_refused_with_its_field(app):
    _, v2, _ = three_retrievers(app)
    create_ref(app)
    evaluation_id = record(app, [(v2, 0.7)])
    body = {
        "namespace_identifier": "prod",
        "ref_name": "production",
        "candidate": "search-v2",
        "evaluation_id": evaluation_id,
        "gate": {"thresholds": [{"metric": "ndcg@10"}]},
    }
    error = rejected(app, "refs.promote", body)
    assert error.field == "body.gate.thresholds[0]" and "no rule" in error.message


def test_an_evaluation_of_a_target_of_the_wrong_kind_is_refused(app):
    three_retrievers(app)
    evaluation_set(app)
    collection = resource(app, "prod", Kind.COLLECTION, "docs").id
    body = {
        "namespace_identifier": "prod",
        "evaluation_set_identifier": "golden",
        "k": 10,
        "runs": [{"target_id": collection, "metrics": {"ndcg@10": 1.0}}],
    }
    error = rejected(app, "evaluations.record", body)
    assert error.field == "body.runs[0].target_id"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"queries": []}, "has queries"),
        ({"set_type": "taxonomy"}, "has documents"),
        ({"queries": QUERIES * 2}, "duplicate ids"),
    ],
)
def test_an_evaluation_set_that_does_not_fit_its_type_is_refused(app, change, message):
    populated(app)
    body = {
        "namespace_identifier": "prod",
        "evaluation_set_name": "golden",
        "set_type": "retriever",
        "queries": QUERIES,
        **change,
    }
    assert message in rejected(app, "evaluation_sets.create", body).message


@pytest.mark.parametrize(
    "threshold, message",
    [
        ({"metric": "ndcg@10", "min": 0.9, "max": 0.1}, "is above"),
        ({"metric": "ndcg@10", "min": "NaN"}, "valid number"),  # JSON has no NaN: a string
        ({"metric": "ndcg@10", "min_change": 0.1, "max_change": -0.1}, "is above"),
    ],
)
def test_a_gate_that_can_never_hold_or_is_not_a_number_is_refused_up_front(app, threshold, message):
    _, v2, _ = three_retrievers(app)
    create_ref(app)
    evaluation_id = record(app, [(v2, 0.7)])
    body = {
        "namespace_identifier": "prod",
        "ref_name": "production",
        "candidate": "search-v2",
        "evaluation_id": evaluation_id,
        "gate": {"thresholds": [threshold]},
    }
    error = rejected(app, "refs.promote", body)
    assert error.code is ErrorCode.VALIDATION_ERROR and message in error.message


def test_an_evaluation_id_of_another_kind_is_the_wrong_kind(app):
    _, v2, _ = three_retrievers(app)
    evaluation_set(app)
    collection = resource(app, "prod", Kind.COLLECTION, "docs").id
    body = {
        "namespace_identifier": "prod",
        "evaluation_set_identifier": "golden",
        "k": 10,
        "evaluation_id": collection,
        "runs": [{"target_id": v2, "metrics": {"ndcg@10": 1.0}}],
    }
    assert rejected(app, "evaluations.record", body).code is ErrorCode.WRONG_KIND
