"""Refs, evaluations, promotion and rollback through the whole stack, on the real corpus."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from envbranch import Client, EnvbranchError
from envbranch.corpus import load_corpus
from envbranch.demo import GATE, TEXT, Story, run_story, search_stage, verifier
from tests.conftest import LiveStack

INPUTS = {"query": {"type": "text", "required": True}}


def test_the_whole_story_holds_on_the_live_stack(live_stack: LiveStack, tmp_path: Path) -> None:
    lines: list[str] = []
    with live_stack.client() as client:
        story = run_story(client, verifier(live_stack.env, tmp_path / "replay"), lines.append)
    assert all(ok for _, ok in story.results), lines
    assert [step for step, _ in story.results] == [
        "create production",
        "clone production to staging",
        "swap the embedding model in staging and reprocess",
        "add a rerank stage to a cloned retriever",
        "compare both with an evaluation",
        "a worse candidate fails the gate",
        "promote through the gate",
        "roll back",
        "diff production and staging",
        "replay the audit log and verify it",
    ]


def three_retrievers(client: Client) -> tuple[str, list[str]]:
    ns = f"refs-{uuid.uuid4().hex[:8]}"
    Story(client, lambda _: None, modules=2).production(ns)
    ids = [client.retrievers.get("search", namespace=ns).retriever_id]
    for top_k in (3, 5):
        clone = client.retrievers.clone(
            "search",
            {"retriever_name": f"top{top_k}", "stages": [search_stage(top_k)]},
            namespace=ns,
        )
        ids.append(clone.retriever.retriever_id)
    return ns, ids


def test_rollback_by_position_and_by_time_restores_the_exact_earlier_target(
    live_stack: LiveStack,
) -> None:
    with live_stack.client() as client:
        ns, (v1, v2, v3) = three_retrievers(client)
        created = client.refs.get("live", namespace=ns)
        client.refs.move("live", {"target": "top3", "reason": "try"}, namespace=ns)
        moved = client.refs.move("live", {"target": v3}, namespace=ns)
        at_v2 = moved.history[1]

        by_position = client.refs.rollback("live", {"position": at_v2.position}, namespace=ns)
        assert by_position.target_id == v2
        assert by_position.history[-1].detail == {
            "rolled_back_to": {"position": at_v2.position, "version": 2}
        }
        first = datetime.fromisoformat(created.history[0].occurred_at)
        by_time = client.refs.rollback(
            "live", {"time": (first + timedelta(microseconds=1)).isoformat()}, namespace=ns
        )
        assert by_time.target_id == v1
        executed = client.retrievers.execute("ref:live", {"query": "x"}, namespace=ns)
        assert executed["retriever_id"] == v1
        undone = client.refs.rollback("live", {"to": "previous"}, namespace=ns)
        assert undone.target_id == v2
        assert [h.action for h in undone.history] == [
            "create",
            "move",
            "move",
            "rollback",
            "rollback",
            "rollback",
        ]


def test_ref_errors_are_specific(live_stack: LiveStack) -> None:
    with live_stack.client() as client:
        ns, (v1, _, _) = three_retrievers(client)
        with pytest.raises(EnvbranchError) as missing:
            client.refs.get("nope", namespace=ns)
        assert missing.value.status == 404
        with pytest.raises(EnvbranchError) as same:
            client.refs.move("live", {"target": v1}, namespace=ns)
        assert same.value.status == 409 and same.value.type == "nothing_to_do"
        with pytest.raises(EnvbranchError) as never_moved:
            client.refs.rollback("live", {"to": "previous"}, namespace=ns)
        assert never_moved.value.type == "nothing_to_do"
        with pytest.raises(EnvbranchError) as both:
            client.refs.rollback("live", {"to": "previous", "position": 1}, namespace=ns)
        assert both.value.status == 422
        with pytest.raises(EnvbranchError) as duplicate:
            client.refs.create(
                {"ref_name": "live", "target_kind": "retriever", "target": "top3"}, namespace=ns
            )
        assert duplicate.value.status == 409
        assert client.refs.get("live", namespace=ns).target_id == v1


def test_a_taxonomy_evaluation_measures_accuracy_per_label_and_agreement(
    live_stack: LiveStack,
) -> None:
    corpus = load_corpus().sample(3)
    ns = f"tax-{uuid.uuid4().hex[:8]}"
    with live_stack.client(namespace=ns) as client:
        client.namespaces.create({"namespace_name": ns})
        client.buckets.create({"bucket_name": "chapters", "bucket_schema": {"properties": {}}})
        client.collections.create(
            {
                "collection_name": "chapters",
                "source": {"type": "bucket", "bucket_ids": ["chapters"]},
                "feature_extractor": TEXT,
            }
        )
        client.buckets.add_objects("chapters", corpus.as_references())
        client.retrievers.create(
            {
                "retriever_name": "nearest",
                "collection_identifiers": ["chapters"],
                "stages": [search_stage(1)],
                "input_schema": INPUTS,
            }
        )
        for name, fields in (("by-chapter", ["chapter"]), ("by-key", ["key"])):
            client.taxonomies.create(
                {
                    "taxonomy_name": name,
                    "config": {
                        "taxonomy_type": "flat",
                        "retriever_id": "nearest",
                        "input_mappings": [
                            {"input_key": "query", "source_type": "payload", "path": "text"}
                        ],
                        "source_collection": {
                            "collection_id": "chapters",
                            "enrichment_fields": [{"field_path": f} for f in fields],
                        },
                    },
                }
            )
        labelled = corpus.labelled[:12]
        client.evaluation_sets.create(
            {
                "evaluation_set_name": "chapters",
                "set_type": "taxonomy",
                "label_field": "chapter",
                "documents": [
                    {"document_id": d.key, "text": d.text, "expected": {"chapter": d.label}}
                    for d in labelled
                ],
            }
        )
        evaluation = client.evaluations.run(
            {"evaluation_set": "chapters", "candidate": "by-chapter", "baseline": "by-key"}
        )
        classified = client.taxonomies.classify("by-chapter", [{"text": d.text} for d in labelled])[
            "results"
        ]

    predicted = [r.get("chapter") for r in classified]
    hits = sum(p == d.label for p, d in zip(predicted, labelled, strict=True))
    candidate, baseline = (r.metrics for r in evaluation.runs)
    assert candidate["accuracy"] == pytest.approx(hits / len(labelled))
    assert candidate["documents"] == len(labelled)
    assert baseline["accuracy"] == 0.0  # by-key copies no chapter: never right
    assert evaluation.agreement == pytest.approx(0.0)
    label = labelled[0].label
    assert f"recall[{label}]" in candidate and f"precision[{label}]" in candidate


def test_envbranch_demo_passes_on_the_embedded_defaults(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envbranch", "demo", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo passed: 10 steps" in result.stdout
    assert "FAIL" not in result.stdout


def test_a_collection_clones_as_of_an_earlier_position_through_the_api(
    live_stack: LiveStack,
) -> None:
    with live_stack.client() as client:
        ns, _ = three_retrievers(client)
        then = client.checkpoint("before the rename").position
        client.collections.update("docs", {"collection_name": "docs-now"}, namespace=ns)
        answer = client.collections.clone(
            "docs", {"collection_name": "docs-then", "as_of_position": then}, namespace=ns
        )
        assert (
            answer.source_collection_id
            == client.collections.get("docs-now", namespace=ns).collection_id
        )
        assert answer.collection.vector_mode == "reuse"
        found = client.retrievers.execute("search", {"query": "heap"}, namespace=ns)
        assert found["documents"]

        client.buckets.add_objects("stdlib", [{"text": "a change"}], namespace=ns)
        with pytest.raises(EnvbranchError) as refused:
            client.collections.clone(
                "docs", {"collection_name": "docs-x", "as_of_position": then}, namespace=ns
            )
        assert refused.value.type == "history_unavailable"
        assert refused.value.details["field"] == "body.as_of_position"


def test_a_key_scoped_to_one_namespace_cannot_reach_another_through_a_ref(
    live_stack: LiveStack,
) -> None:
    with live_stack.client() as admin:
        mine, _ = three_retrievers(admin)
        theirs, (their_search, _, _) = three_retrievers(admin)
        admin.refs.create(
            {"ref_name": "theirs", "target_kind": "retriever", "target": their_search},
            namespace=mine,
        )
        key = admin.keys.create("scoped", [mine]).api_key
    with live_stack.client(api_key=key, namespace=mine) as scoped:
        for call in (
            lambda: scoped.retrievers.get("ref:theirs"),
            lambda: scoped.retrievers.execute("ref:theirs", {"query": "x"}),
        ):
            with pytest.raises(EnvbranchError) as hidden:
                call()
            assert hidden.value.status == 404
        scoped.refs.move("live", {"target": "top3"})  # its own namespace: fine
        with live_stack.client() as admin:
            admin.refs.move("theirs", {"target": "top3"}, namespace=mine)
        with pytest.raises(EnvbranchError) as forbidden:
            scoped.refs.rollback("theirs", {"to": "previous"})
        assert forbidden.value.status == 403
    with live_stack.client() as admin:
        moved_to = admin.retrievers.get("ref:theirs", namespace=mine)  # admin sees both
        assert moved_to.namespace_id == admin.namespaces.get(mine).namespace_id


def test_an_evaluation_retried_with_its_key_is_the_one_recorded(live_stack: LiveStack) -> None:
    with live_stack.client() as client:
        ns, _ = three_retrievers(client)
        body = {"evaluation_set": "stdlib-queries", "candidate": "top3", "baseline": "search"}
        key = f"eval-{uuid.uuid4().hex}"
        first = client.evaluations.run(body, namespace=ns, idempotency_key=key)
        again = client.evaluations.run(body, namespace=ns, idempotency_key=key)
        assert again == first


def test_promoting_the_current_target_is_refused_before_anything_is_recorded(
    live_stack: LiveStack,
) -> None:
    with live_stack.client() as client:
        ns, (search, _, _) = three_retrievers(client)
        before = client.audit(type="Evaluation.Recorded").pagination.total
        body = {"candidate": search, "evaluation_set": "stdlib-queries", "gate": GATE}
        with pytest.raises(EnvbranchError) as refused:
            client.refs.promote("live", body, namespace=ns)
        assert refused.value.status == 409 and refused.value.type == "nothing_to_do"
        assert client.audit(type="Evaluation.Recorded").pagination.total == before
        with pytest.raises(EnvbranchError) as impossible:
            bad = {"thresholds": [{"metric": "ndcg@10", "min": 0.9, "max": 0.1}]}
            client.refs.promote("live", {**body, "candidate": "top3", "gate": bad}, namespace=ns)
        assert impossible.value.status == 422
        assert client.audit(type="Evaluation.Recorded").pagination.total == before


def test_a_promotion_retried_with_its_key_answers_what_was_decided(live_stack: LiveStack) -> None:
    with live_stack.client() as client:
        ns, (_, top3, _) = three_retrievers(client)
        body = {"candidate": "top3", "evaluation_set": "stdlib-queries", "gate": GATE}
        key = f"promote-{uuid.uuid4().hex}"
        outcomes = []
        for _ in range(2):
            with pytest.raises(EnvbranchError) as refused:
                client.refs.promote("live", body, namespace=ns, idempotency_key=key)
            outcomes.append(refused.value)
        assert [o.type for o in outcomes] == ["gate_failed", "gate_failed"]
        assert outcomes[0].details == outcomes[1].details
        history = client.refs.get("live", namespace=ns).history
        assert [h.action for h in history] == ["create", "promotion_refused"]
        assert history[-1].target_id == top3


def test_a_diff_of_two_evaluation_sets_is_a_clear_error(live_stack: LiveStack) -> None:
    with live_stack.client() as client:
        ns, _ = three_retrievers(client)
        evs = client.evaluation_sets.get("stdlib-queries", namespace=ns).evaluation_set_id
        with pytest.raises(EnvbranchError) as error:
            client.diff(evs, evs)
        assert error.value.status == 422


def test_a_diff_of_a_namespace_and_its_clone_lists_exactly_the_changes_made(
    live_stack: LiveStack,
) -> None:
    ns = f"diff-{uuid.uuid4().hex[:8]}"
    staging = f"{ns}-staging"
    rerank = {"stage_name": "rerank", "config": {"stage_id": "rerank", "parameters": {}}}
    with live_stack.client() as client:
        client.namespaces.create({"namespace_name": ns})
        client.buckets.create(
            {"bucket_name": "b", "bucket_schema": {"properties": {}}}, namespace=ns
        )
        client.collections.create(
            {
                "collection_name": "docs",
                "source": {"type": "bucket", "bucket_ids": ["b"]},
                "feature_extractor": TEXT,
            },
            namespace=ns,
        )
        documents = [{"document_id": d, "text": f"text of {d}"} for d in ("a", "b", "c")]
        client.collections.write_documents("docs", documents, namespace=ns)
        client.retrievers.create(
            {
                "retriever_name": "search",
                "collection_identifiers": ["docs"],
                "stages": [search_stage()],
                "input_schema": INPUTS,
            },
            namespace=ns,
        )
        task = client.namespaces.clone(ns, {"namespace_name": staging}).task_id
        assert client.tasks.wait(task, timeout=60).status == "COMPLETED"
        assert client.diff(ns, staging)["summary"] == {
            "only_in_from": 0,
            "only_in_to": 0,
            "changed": 0,
            "unchanged": 3,
        }

        # In staging: a new retriever takes the old one's name, and the documents diverge.
        client.retrievers.update("search", {"retriever_name": "search-old"}, namespace=staging)
        client.retrievers.clone(
            "search-old",
            {"retriever_name": "search", "stages": [search_stage(), rerank]},
            namespace=staging,
        )
        client.collections.write_documents(
            "docs",
            [{"document_id": "d", "text": "new"}, {"document_id": "b", "text": "rewritten"}],
            namespace=staging,
        )
        client.collections.delete_documents("docs", ["a"], namespace=staging)
        diff = client.diff(ns, staging)

    assert [(r["kind"], r["name"]) for r in diff["only_in_from"]] == []
    assert [(r["kind"], r["name"]) for r in diff["only_in_to"]] == [("retriever", "search-old")]
    assert [(r["kind"], r["name"]) for r in diff["unchanged"]] == [("bucket", "b")]
    collection, retriever = diff["changed"]
    assert (collection["kind"], collection["fields"]) == ("collection", [])
    assert collection["documents"] == {"added": 1, "removed": 1, "changed": 1, "unchanged": 1}
    assert retriever["kind"] == "retriever" and retriever["documents"] is None
    assert retriever["fields"] == [
        {"field": "stages[1]", "from": None, "to": {**rerank, "stage_type": "sort"}, "config": True}
    ]
