"""Mixpeek's request options envbranch takes but does not act on (domain.mixpeek_options):
accepted when left out, null or Mixpeek's default, then dropped; refused by name otherwise."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contract.commands import command_from_document
from contract.objects import ObjectsWriteRequest
from contract.requests import (
    ApplyTaxonomyRequest,
    CollectionCreateRequest,
    NamespaceCloneRequest,
    NamespaceCreateRequest,
    RetrieverCreateRequest,
)
from domain.values import Stage

COLLECTION = {
    "collection_name": "articles",
    "source": {"type": "bucket", "bucket_ids": ["articles"], "field_map": {}},
    "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1"},
}
RETRIEVER = {
    "retriever_name": "search",
    "collection_identifiers": ["articles"],
    "stages": [{"stage_name": "semantic", "config": {"stage_id": "feature_search"}}],
}


def test_mixpeeks_defaults_are_taken_and_dropped_from_what_is_stored() -> None:
    body = CollectionCreateRequest(**COLLECTION, enabled=True, metadata=None)
    retriever = RetrieverCreateRequest(**RETRIEVER, requires_subscription=False, tags=None)

    dumped = body.model_dump(mode="json", exclude_none=True)
    assert "enabled" not in dumped and "metadata" not in dumped
    assert "field_map" not in dumped["source"]
    assert "requires_subscription" not in retriever.model_dump(exclude_none=True)
    assert NamespaceCreateRequest(namespace_name="prod", mode="managed").mode is None


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (CollectionCreateRequest, {**COLLECTION, "enabled": False}, "enabled"),
        (
            RetrieverCreateRequest,
            {**RETRIEVER, "requires_subscription": True},
            "requires_subscription",
        ),
        (RetrieverCreateRequest, {**RETRIEVER, "tags": ["a"]}, "tags"),
        (NamespaceCreateRequest, {"namespace_name": "p", "mode": "standalone"}, "mode"),
        (NamespaceCloneRequest, {"namespace_name": "p", "ttl_seconds": 60}, "ttl_seconds"),
        # compared with its JSON type: 1 is not Mixpeek's false
        (CollectionCreateRequest, {**COLLECTION, "enabled": 1}, "enabled"),
    ],
)
def test_anything_else_is_refused_naming_the_field(model: type, body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        model(**body)
    (error,) = refused.value.errors()
    assert error["loc"][-1] == field
    assert "a Mixpeek option envbranch does not support" in error["msg"]


def test_the_commands_topic_takes_the_same_options_and_refuses_the_same() -> None:
    document = {
        "command_id": "c-1",
        "type": "retrievers.create",
        "actor": "ci",
        "body": {"namespace_identifier": "prod", **RETRIEVER, "requires_subscription": False},
    }
    assert command_from_document(document).body.requires_subscription is None
    document["body"]["requires_subscription"] = True
    with pytest.raises(Exception, match="requires_subscription"):
        command_from_document(document)


def test_the_openapi_schema_of_an_option_says_which_values_are_taken() -> None:
    schema = RetrieverCreateRequest.model_json_schema()["properties"]["requires_subscription"]
    assert schema["enum"] == [False, None] and schema["x-mixpeek-option"] is True


def test_a_stage_sent_back_with_its_mirrored_parameters_is_taken_and_a_disagreeing_one_is_not() -> (
    None
):
    config = {"stage_id": "feature_search", "parameters": {"final_top_k": 5}}
    stage = Stage(stage_name="s", config=config, parameters={"final_top_k": 5})
    assert stage.parameters is None and stage.config.parameters == {"final_top_k": 5}
    with pytest.raises(ValidationError, match="mirrors config.parameters"):
        Stage(stage_name="s", config=config, parameters={"final_top_k": 6})


def test_mixpeeks_object_of_blobs_is_one_object_with_its_text_and_plain_values() -> None:
    body = ObjectsWriteRequest(
        blobs=[
            {"property": "body", "type": "text", "data": "The lighthouse keeper."},
            {"property": "year", "type": "integer", "data": 1890},
        ],
        metadata={"topic": "lighthouse"},
        key_prefix="/docs",  # a storage path in Mixpeek: not the object's key
        idempotency_key="lh-1",
        skip_duplicates=False,
        canonicalize_source=True,
    )
    (obj,) = body.as_objects()
    assert (obj.key, obj.text) == ("lh-1", "The lighthouse keeper.")
    assert obj.metadata == {"topic": "lighthouse", "year": 1890}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"blobs": [{"property": "p", "type": "image", "data": "http://x/y.png"}]}, "type"),
        (
            {"blobs": [{"property": "p", "type": "integer", "data": 1}]},
            "exactly one blob of type text",
        ),
        (
            {"objects": [{"text": "a"}], "blobs": [{"property": "b", "type": "text", "data": "b"}]},
            "not both",
        ),
        ({}, "send objects, or Mixpeek's blobs"),
    ],
)
def test_an_object_body_that_is_neither_form_is_refused(body: dict, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        ObjectsWriteRequest(**body)


def test_apply_taxonomy_takes_mixpeeks_taxonomy_id_for_its_identifier() -> None:
    body = ApplyTaxonomyRequest(taxonomy_id="tax_1", batch_size=1000, parallelism=4)
    assert (body.taxonomy_identifier, body.taxonomy_id) == ("tax_1", None)
    with pytest.raises(ValidationError, match="differ"):
        ApplyTaxonomyRequest(taxonomy_id="tax_1", taxonomy_identifier="tax_2")
    with pytest.raises(ValidationError, match="required"):
        ApplyTaxonomyRequest()


# Digests of these commands as the version before Mixpeek's options stored them: a retry of
# a command stored then must still match its receipt (or it is refused as a reused id).
EARLIER_DIGESTS = {
    "buckets.create": (
        {"bucket_name": "b", "bucket_schema": {"properties": {}}},
        "aa726b5b442cc5f69b5fd63799eff38bf3ec0b736d12cea99425f97805ac28c0",
    ),
    "retrievers.create": (
        {
            "retriever_name": "r",
            "collection_identifiers": ["c"],
            "stages": [
                {
                    "stage_name": "s",
                    "config": {"stage_id": "feature_search", "parameters": {"x": 1}},
                }
            ],
        },
        "03224ba216c2d0a8037f90e365c036e8e8ce03914d05064ec7f7916a2ba275f8",
    ),
    "namespaces.clone": (
        {"namespace_name": "s", "vectors": "reuse"},
        "01727e96c6558eb1e938cb2d0bc3747a778a51fd8cd66f8025939554340075f2",
    ),
}


@pytest.mark.parametrize("type_", sorted(EARLIER_DIGESTS))
def test_a_command_keeps_the_digest_it_had_before_mixpeeks_options(type_: str) -> None:
    body, digest = EARLIER_DIGESTS[type_]
    document = {
        "command_id": "c",
        "type": type_,
        "actor": "a",
        "body": {"namespace_identifier": "prod", **body},
    }
    assert command_from_document(document).digest == digest
