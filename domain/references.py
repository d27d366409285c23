"""Where a resource refers to other resources, in one place.

Creating a resource resolves the identifiers it was given (names or IDs) to
IDs; cloning a namespace maps every ID to its clone. Both walk the same
references with a different function, so a new reference is added once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.ids import Kind

# (kind of the referenced resource, the value found, where it was found) -> new value
MapRef = Callable[[Kind, str, str], str]


def map_source(source: dict[str, Any], ref: MapRef, field: str) -> dict[str, Any]:
    out = dict(source)
    if source.get("bucket_ids"):
        out["bucket_ids"] = [
            ref(Kind.BUCKET, bucket, f"{field}.bucket_ids[{i}]")
            for i, bucket in enumerate(source["bucket_ids"])
        ]
    if source.get("collection_id") is not None:
        out["collection_id"] = ref(
            Kind.COLLECTION, source["collection_id"], f"{field}.collection_id"
        )
    return out


def map_collections(collection_ids: list[str], ref: MapRef, field: str) -> list[str]:
    return [
        ref(Kind.COLLECTION, collection, f"{field}[{i}]")
        for i, collection in enumerate(collection_ids)
    ]


def map_stages(stages: list[dict[str, Any]], ref: MapRef, field: str) -> list[dict[str, Any]]:
    """Collections a stage names itself (feature_search's ``searches[].collection_ids``)."""
    out = []
    for i, stage in enumerate(stages):
        parameters = (stage.get("config") or {}).get("parameters") or {}
        searches = parameters.get("searches")
        if not isinstance(searches, list):
            out.append(stage)
            continue
        mapped = []
        for j, search in enumerate(searches):
            if isinstance(search, dict) and isinstance(search.get("collection_ids"), list):
                where = f"{field}[{i}].config.parameters.searches[{j}].collection_ids"
                search = {
                    **search,
                    "collection_ids": map_collections(search["collection_ids"], ref, where),
                }
            mapped.append(search)
        config = {**stage["config"], "parameters": {**parameters, "searches": mapped}}
        out.append({**stage, "config": config})
    return out


def map_taxonomy_config(config: dict[str, Any], ref: MapRef, field: str) -> dict[str, Any]:
    out = dict(config)
    if config.get("retriever_id") is not None:
        out["retriever_id"] = ref(Kind.RETRIEVER, config["retriever_id"], f"{field}.retriever_id")
    if config.get("source_collection") is not None:
        out["source_collection"] = {
            **config["source_collection"],
            "collection_id": ref(
                Kind.COLLECTION,
                config["source_collection"]["collection_id"],
                f"{field}.source_collection.collection_id",
            ),
        }
    if config.get("hierarchical_nodes") is not None:
        out["hierarchical_nodes"] = [
            _map_node(node, ref, f"{field}.hierarchical_nodes[{i}]")
            for i, node in enumerate(config["hierarchical_nodes"])
        ]
    return out


def _map_node(node: dict[str, Any], ref: MapRef, field: str) -> dict[str, Any]:
    out = dict(node)
    out["collection_id"] = ref(Kind.COLLECTION, node["collection_id"], f"{field}.collection_id")
    if node.get("parent_collection_id") is not None:
        out["parent_collection_id"] = ref(
            Kind.COLLECTION, node["parent_collection_id"], f"{field}.parent_collection_id"
        )
    if node.get("retriever_id") is not None:
        out["retriever_id"] = ref(Kind.RETRIEVER, node["retriever_id"], f"{field}.retriever_id")
    return out
