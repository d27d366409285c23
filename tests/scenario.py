"""A production environment with one of every resource, then a clone of each kind."""

from __future__ import annotations

from typing import Any

from tests.support import command

__all__ = ["command", "production", "clones"]

TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
MINILM = {"feature_extractor_name": "minilm_extractor", "version": "v1"}
SEARCH_STAGE = {
    "stage_name": "search",
    "config": {"stage_id": "feature_search", "parameters": {"top_k": 10}},
}
RERANK_STAGE = {"stage_name": "rerank", "config": {"stage_id": "rerank", "parameters": {}}}


def production(ns: str = "prod") -> list[dict[str, Any]]:
    def inside(body: dict[str, Any]) -> dict[str, Any]:
        return {"namespace_identifier": ns, **body}

    return [
        command("namespaces.create", {"namespace_name": ns, "description": "production"}),
        command(
            "buckets.create",
            inside(
                {"bucket_name": "docs", "bucket_schema": {"properties": {"text": {"type": "text"}}}}
            ),
        ),
        command(
            "collections.create",
            inside(
                {
                    "collection_name": "docs-text",
                    "source": {"type": "bucket", "bucket_ids": ["docs"]},
                    "feature_extractor": TEXT,
                }
            ),
        ),
        command(
            "collections.create",
            inside(
                {
                    "collection_name": "labels",
                    "source": {"type": "bucket", "bucket_ids": ["docs"]},
                    "feature_extractor": TEXT,
                }
            ),
        ),
        command(
            "collections.create",
            inside(
                {
                    "collection_name": "docs-derived",
                    "source": {"type": "collection", "collection_id": "docs-text"},
                    "feature_extractor": TEXT,
                }
            ),
        ),
        command(
            "retrievers.create",
            inside(
                {
                    "retriever_name": "search",
                    "collection_identifiers": ["docs-text", "docs-derived"],
                    "stages": [SEARCH_STAGE],
                    "input_schema": {"query": {"type": "text", "required": True}},
                }
            ),
        ),
        command(
            "taxonomies.create",
            inside(
                {
                    "taxonomy_name": "topics",
                    "config": {
                        "taxonomy_type": "flat",
                        "retriever_id": "search",
                        "input_mappings": [
                            {"input_key": "query", "source_type": "payload", "path": "text"}
                        ],
                        "source_collection": {
                            "collection_id": "labels",
                            "enrichment_fields": [{"field_path": "label"}],
                        },
                    },
                }
            ),
        ),
        command(
            "taxonomies.create",
            inside(
                {
                    "taxonomy_name": "tree",
                    "config": {
                        "taxonomy_type": "hierarchical",
                        "retriever_id": "search",
                        "hierarchical_nodes": [
                            {"collection_id": "labels"},
                            {
                                "collection_id": "docs-text",
                                "parent_collection_id": "labels",
                                "retriever_id": "search",
                            },
                        ],
                    },
                }
            ),
        ),
    ]


def clones(ns: str = "prod", staging: str = "staging") -> list[dict[str, Any]]:
    def inside(body: dict[str, Any]) -> dict[str, Any]:
        return {"namespace_identifier": ns, **body}

    return [
        command(
            "collections.clone",
            inside(
                {
                    "collection_identifier": "docs-text",
                    "collection_name": "docs-minilm",
                    "feature_extractor": MINILM,
                }
            ),
        ),
        command(
            "collections.clone",
            inside({"collection_identifier": "docs-text", "collection_name": "docs-copy"}),
        ),
        command(
            "retrievers.clone",
            inside(
                {
                    "retriever_identifier": "search",
                    "retriever_name": "search-rerank",
                    "stages": [SEARCH_STAGE, RERANK_STAGE],
                }
            ),
        ),
        command(
            "taxonomies.clone",
            inside(
                {
                    "taxonomy_identifier": "topics",
                    "taxonomy_name": "topics-rerank",
                    "config": {
                        "taxonomy_type": "flat",
                        "retriever_id": "search-rerank",
                        "input_mappings": [
                            {"input_key": "query", "source_type": "payload", "path": "text"}
                        ],
                        "source_collection": {"collection_id": "labels"},
                    },
                }
            ),
        ),
        command(
            "namespaces.clone",
            {
                "namespace_identifier": ns,
                "namespace_name": staging,
                "include_resources": {"taxonomies": True},
            },
        ),
    ]
