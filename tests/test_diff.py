"""Pure tests of projections.diff: rows built by hand, no services."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from projections.diff import (
    KINDS,
    DocumentDiff,
    Side,
    content_digest,
    document_diff,
    field_diffs,
    names_of,
    namespace_diff,
    normalize,
    resource_diff,
)

_counter = itertools.count(1)
PREFIX = {"bucket": "bkt", "collection": "col", "retriever": "ret", "taxonomy": "tax"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{next(_counter):032x}"


def feature_search(*collection_ids: str, top_k: int = 10) -> dict[str, Any]:
    return {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"collection_ids": list(collection_ids), "query": "{{INPUT.q}}"}],
                "top_k": top_k,
            },
        },
    }


RERANK = {
    "stage_name": "rerank",
    "stage_type": "sort",
    "config": {"stage_id": "rerank", "parameters": {"top_n": 5}},
}


def prod() -> Side:
    """A namespace with every kind of resource, referencing each other by ID."""
    ns = new_id("ns")
    raw, images = new_id("bkt"), new_id("bkt")
    docs, small = new_id("col"), new_id("col")
    search, other = new_id("ret"), new_id("ret")
    topics, tree = new_id("tax"), new_id("tax")
    common = {"namespace_id": ns, "created_at": "t0", "updated_at": "t0", "version": 1}
    extractor = {"feature_extractor_name": "text-embed", "version": "v1", "params": {"dim": 8}}
    return Side(
        namespace={"namespace_id": ns, "namespace_name": "prod", "description": None},
        resources={
            "bucket": [
                {
                    **common,
                    "bucket_id": raw,
                    "bucket_name": "raw",
                    "description": "raw text",
                    "bucket_schema": {"properties": {"text": {"type": "string"}}},
                    "source_bucket_id": None,
                },
                {
                    **common,
                    "bucket_id": images,
                    "bucket_name": "images",
                    "description": None,
                    "bucket_schema": {"properties": {"url": {"type": "string"}}},
                    "source_bucket_id": None,
                },
            ],
            "collection": [
                {
                    **common,
                    "collection_id": docs,
                    "collection_name": "docs",
                    "description": None,
                    "source": {"type": "bucket", "bucket_ids": [raw]},
                    "feature_extractor": extractor,
                    "vector_mode": "own",
                    "status": "ready",
                    "source_collection_id": None,
                },
                {
                    **common,
                    "collection_id": small,
                    "collection_name": "docs-small",
                    "description": None,
                    "source": {"type": "collection", "collection_id": docs},
                    "feature_extractor": extractor,
                    "vector_mode": "own",
                    "status": "ready",
                    "source_collection_id": None,
                },
            ],
            "retriever": [
                {
                    **common,
                    "retriever_id": search,
                    "retriever_name": "search",
                    "description": None,
                    "collection_ids": [docs],
                    "stages": [feature_search(docs)],
                    "input_schema": {"q": {"type": "text"}},
                    "source_retriever_id": None,
                },
                {
                    **common,
                    "retriever_id": other,
                    "retriever_name": "other",
                    "description": None,
                    "collection_ids": [small],
                    "stages": [feature_search(small)],
                    "input_schema": {"q": {"type": "text"}},
                    "source_retriever_id": None,
                },
            ],
            "taxonomy": [
                {
                    **common,
                    "taxonomy_id": topics,
                    "taxonomy_name": "topics",
                    "description": None,
                    "config": {
                        "taxonomy_type": "flat",
                        "retriever_id": search,
                        "input_mappings": [
                            {"input_key": "q", "source_type": "payload", "path": "text"}
                        ],
                        "source_collection": {"collection_id": docs, "enrichment_fields": []},
                    },
                    "source_taxonomy_id": None,
                },
                {
                    **common,
                    "taxonomy_id": tree,
                    "taxonomy_name": "tree",
                    "description": None,
                    "config": {
                        "taxonomy_type": "hierarchical",
                        "retriever_id": other,
                        "input_mappings": [],
                        "hierarchical_nodes": [
                            {"collection_id": docs, "enrichment_fields": []},
                            {
                                "collection_id": small,
                                "parent_collection_id": docs,
                                "retriever_id": search,
                                "enrichment_fields": [],
                            },
                        ],
                    },
                    "source_taxonomy_id": None,
                },
            ],
        },
    )


def clone(side: Side, name: str = "staging") -> Side:
    """What a namespace clone produces: new IDs everywhere, references remapped."""
    mapping = {side.namespace["namespace_id"]: new_id("ns")}
    for kind in KINDS:
        for row in side.rows(kind):
            mapping[row[f"{kind}_id"]] = new_id(PREFIX[kind])

    def remap(value: Any) -> Any:
        if isinstance(value, str):
            return mapping.get(value, value)
        if isinstance(value, dict):
            return {k: remap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [remap(v) for v in value]
        return value

    resources: dict[str, list[dict[str, Any]]] = {}
    for kind, rows in side.resources.items():
        resources[kind] = []
        for row in rows:
            cloned = remap(copy.deepcopy(row))
            cloned[f"source_{kind}_id"] = row[f"{kind}_id"]
            cloned["created_at"] = cloned["updated_at"] = "t1"
            resources[kind].append(cloned)
    namespace = {**remap(side.namespace), "namespace_name": name}
    return Side(namespace=namespace, resources=resources)


def row(side: Side, kind: str, name: str) -> dict[str, Any]:
    return next(r for r in side.rows(kind) if r[f"{kind}_name"] == name)


ALL_NAMES = [
    {"kind": "bucket", "name": "images"},
    {"kind": "bucket", "name": "raw"},
    {"kind": "collection", "name": "docs"},
    {"kind": "collection", "name": "docs-small"},
    {"kind": "retriever", "name": "other"},
    {"kind": "retriever", "name": "search"},
    {"kind": "taxonomy", "name": "topics"},
    {"kind": "taxonomy", "name": "tree"},
]


def test_a_clone_with_new_ids_and_remapped_references_is_all_unchanged() -> None:
    a = prod()
    b = clone(a)
    assert (
        row(a, "retriever", "search")["collection_ids"]
        != (row(b, "retriever", "search")["collection_ids"])
    )

    result = namespace_diff(a, b)

    assert result == {
        "from": {"namespace_id": a.namespace["namespace_id"], "namespace_name": "prod"},
        "to": {"namespace_id": b.namespace["namespace_id"], "namespace_name": "staging"},
        "only_in_from": [],
        "only_in_to": [],
        "changed": [],
        "unchanged": ALL_NAMES,
        "summary": {"only_in_from": 0, "only_in_to": 0, "changed": 0, "unchanged": 8},
    }


def test_divergences_after_a_clone_are_listed_exactly_and_nothing_else() -> None:
    a = prod()
    b = clone(a)
    # A retriever with an extra rerank stage on one side only.
    row(b, "retriever", "search")["stages"].append(RERANK)
    # A collection whose feature extractor changed model.
    row(b, "collection", "docs")["feature_extractor"]["feature_extractor_name"] = "clip"
    # A taxonomy now fed by another retriever.
    topics_b = row(b, "taxonomy", "topics")
    topics_b["config"]["retriever_id"] = row(b, "retriever", "other")["retriever_id"]
    # A description change.
    row(b, "bucket", "raw")["description"] = "raw text, deduplicated"
    # Resources on one side only.
    tree = row(a, "taxonomy", "tree")
    b.resources["taxonomy"] = [topics_b]
    audio = {
        "namespace_id": b.namespace["namespace_id"],
        "bucket_id": new_id("bkt"),
        "bucket_name": "audio",
        "description": None,
        "bucket_schema": {"properties": {}},
    }
    b.resources["bucket"].append(audio)

    result = namespace_diff(a, b)

    assert result == {
        "from": {"namespace_id": a.namespace["namespace_id"], "namespace_name": "prod"},
        "to": {"namespace_id": b.namespace["namespace_id"], "namespace_name": "staging"},
        "only_in_from": [{"kind": "taxonomy", "name": "tree", "id": tree["taxonomy_id"]}],
        "only_in_to": [{"kind": "bucket", "name": "audio", "id": audio["bucket_id"]}],
        "changed": [
            {
                "kind": "bucket",
                "name": "raw",
                "from_id": row(a, "bucket", "raw")["bucket_id"],
                "to_id": row(b, "bucket", "raw")["bucket_id"],
                "fields": [
                    {
                        "field": "description",
                        "from": "raw text",
                        "to": "raw text, deduplicated",
                        "config": False,
                    }
                ],
                "documents": None,
            },
            {
                "kind": "collection",
                "name": "docs",
                "from_id": row(a, "collection", "docs")["collection_id"],
                "to_id": row(b, "collection", "docs")["collection_id"],
                "fields": [
                    {
                        "field": "feature_extractor.feature_extractor_name",
                        "from": "text-embed",
                        "to": "clip",
                        "config": True,
                    }
                ],
                "documents": None,
            },
            {
                "kind": "retriever",
                "name": "search",
                "from_id": row(a, "retriever", "search")["retriever_id"],
                "to_id": row(b, "retriever", "search")["retriever_id"],
                "fields": [{"field": "stages[1]", "from": None, "to": RERANK, "config": True}],
                "documents": None,
            },
            {
                "kind": "taxonomy",
                "name": "topics",
                "from_id": row(a, "taxonomy", "topics")["taxonomy_id"],
                "to_id": topics_b["taxonomy_id"],
                "fields": [
                    {
                        "field": "config.retriever_id",
                        "from": "retriever:search",
                        "to": "retriever:other",
                        "config": True,
                    }
                ],
                "documents": None,
            },
        ],
        "unchanged": [
            {"kind": "bucket", "name": "images"},
            {"kind": "collection", "name": "docs-small"},
            {"kind": "retriever", "name": "other"},
        ],
        "summary": {"only_in_from": 1, "only_in_to": 1, "changed": 4, "unchanged": 3},
    }


def test_a_reference_to_a_resource_missing_on_its_side_stays_a_raw_id() -> None:
    a = prod()
    b = clone(a)
    other_b = row(b, "retriever", "other")
    b.resources["retriever"] = [row(b, "retriever", "search")]
    tree_b = row(b, "taxonomy", "tree")

    result = namespace_diff(a, b)

    assert result["only_in_from"] == [
        {"kind": "retriever", "name": "other", "id": row(a, "retriever", "other")["retriever_id"]}
    ]
    assert [(c["name"], c["fields"]) for c in result["changed"]] == [
        (
            "tree",
            [
                {
                    "field": "config.retriever_id",
                    "from": "retriever:other",
                    "to": other_b["retriever_id"],
                    "config": True,
                }
            ],
        )
    ]
    assert tree_b["config"]["retriever_id"] == other_b["retriever_id"]


def test_a_removed_stage_is_reported_to_none_and_a_changed_parameter_at_its_deepest_path() -> None:
    a = prod()
    row(a, "retriever", "search")["stages"].append(RERANK)
    b = clone(a)
    stages = row(b, "retriever", "search")["stages"]
    stages.pop()
    stages[0]["config"]["parameters"]["top_k"] = 50

    result = namespace_diff(a, b)

    assert [c["fields"] for c in result["changed"]] == [
        [
            {
                "field": "stages[0].config.parameters.top_k",
                "from": 10,
                "to": 50,
                "config": True,
            },
            {"field": "stages[1]", "from": RERANK, "to": None, "config": True},
        ]
    ]


def test_a_list_of_non_dicts_is_reported_whole_with_ids_as_names() -> None:
    a = prod()
    b = clone(a)
    search = row(b, "retriever", "search")
    search["collection_ids"] = [
        row(b, "collection", "docs")["collection_id"],
        row(b, "collection", "docs-small")["collection_id"],
    ]

    result = namespace_diff(a, b)

    assert result["changed"][0]["fields"] == [
        {
            "field": "collection_ids",
            "from": ["collection:docs"],
            "to": ["collection:docs", "collection:docs-small"],
            "config": True,
        }
    ]


def test_a_reference_inside_nested_lists_of_dicts_is_compared_by_name() -> None:
    a = prod()
    b = clone(a)
    nodes = row(b, "taxonomy", "tree")["config"]["hierarchical_nodes"]
    nodes[1]["parent_collection_id"] = row(b, "collection", "docs-small")["collection_id"]
    stages = row(b, "retriever", "other")["stages"]
    stages[0]["config"]["parameters"]["searches"][0]["collection_ids"] = [
        row(b, "collection", "docs")["collection_id"]
    ]

    result = namespace_diff(a, b)

    assert [(c["name"], c["fields"]) for c in result["changed"]] == [
        (
            "other",
            [
                {
                    "field": "stages[0].config.parameters.searches[0].collection_ids",
                    "from": ["collection:docs-small"],
                    "to": ["collection:docs"],
                    "config": True,
                }
            ],
        ),
        (
            "tree",
            [
                {
                    "field": "config.hierarchical_nodes[1].parent_collection_id",
                    "from": "collection:docs",
                    "to": "collection:docs-small",
                    "config": True,
                }
            ],
        ),
    ]


def test_documents_are_asked_only_for_collections_on_both_sides_and_count_as_a_change() -> None:
    a = prod()
    b = clone(a)
    asked: list[tuple[str, str]] = []

    def documents(x: dict[str, Any], y: dict[str, Any]) -> DocumentDiff | None:
        asked.append((x["collection_name"], y["collection_name"]))
        if x["collection_name"] == "docs":
            return DocumentDiff(added=2, removed=0, changed=1, unchanged=7)
        return DocumentDiff(added=0, removed=0, changed=0, unchanged=3)

    result = namespace_diff(a, b, documents)

    assert asked == [("docs", "docs"), ("docs-small", "docs-small")]
    assert result["changed"] == [
        {
            "kind": "collection",
            "name": "docs",
            "from_id": row(a, "collection", "docs")["collection_id"],
            "to_id": row(b, "collection", "docs")["collection_id"],
            "fields": [],
            "documents": {"added": 2, "removed": 0, "changed": 1, "unchanged": 7},
        }
    ]
    assert {"kind": "collection", "name": "docs-small"} in result["unchanged"]
    assert result["summary"]["changed"] == 1


def test_a_documents_callable_returning_none_leaves_documents_none() -> None:
    a = prod()
    b = clone(a)
    diff = resource_diff(
        "collection",
        row(a, "collection", "docs"),
        row(b, "collection", "docs"),
        a.names(),
        b.names(),
        lambda x, y: None,
    )
    assert diff["documents"] is None
    assert diff["fields"] == []


def test_two_resources_of_one_namespace_compare_directly_and_name_both_when_names_differ() -> None:
    a = prod()
    docs = row(a, "collection", "docs")
    copy_of_docs = {
        **copy.deepcopy(docs),
        "collection_id": new_id("col"),
        "collection_name": "docs-copy",
        "source_collection_id": docs["collection_id"],
    }
    search = row(a, "retriever", "search")
    search_copy = {
        **copy.deepcopy(search),
        "retriever_id": new_id("ret"),
        "retriever_name": "search-copy",
        "collection_ids": [copy_of_docs["collection_id"]],
    }
    a.resources["collection"].append(copy_of_docs)
    a.resources["retriever"].append(search_copy)
    names = a.names()

    same = resource_diff("collection", docs, copy_of_docs, names, names)
    moved = resource_diff("retriever", search, search_copy, names, names)

    assert same == {
        "kind": "collection",
        "name": "docs -> docs-copy",
        "from_id": docs["collection_id"],
        "to_id": copy_of_docs["collection_id"],
        "fields": [],
        "documents": None,
    }
    assert moved["name"] == "search -> search-copy"
    assert moved["fields"] == [
        {
            "field": "collection_ids",
            "from": ["collection:docs"],
            "to": ["collection:docs-copy"],
            "config": True,
        }
    ]


def test_resource_diff_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        resource_diff("namespace", {}, {}, {}, {})


def test_two_resources_with_one_name_on_one_side_are_rejected() -> None:
    a = prod()
    a.resources["bucket"].append({**row(a, "bucket", "raw"), "bucket_id": new_id("bkt")})
    with pytest.raises(ValueError, match="named 'raw'"):
        namespace_diff(a, clone(prod()))


def test_missing_kinds_count_as_no_resources_of_that_kind() -> None:
    a = prod()
    b = Side(namespace={"namespace_id": new_id("ns"), "namespace_name": "empty"})
    result = namespace_diff(a, b)
    assert result["only_in_from"] == [
        {
            "kind": n["kind"],
            "name": n["name"],
            "id": row(a, n["kind"], n["name"])[f"{n['kind']}_id"],
        }
        for n in ALL_NAMES
    ]
    assert result["summary"] == {"only_in_from": 8, "only_in_to": 0, "changed": 0, "unchanged": 0}


def test_field_diffs_treat_a_missing_key_as_none_and_recurse_into_dicts() -> None:
    assert field_diffs("x", {"a": None}, {}) == []
    assert field_diffs("x", {"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3, "d": 4}}) == [
        ("x.a.c", 2, 3),
        ("x.a.d", None, 4),
    ]
    assert field_diffs("x", {"a": 1}, [1]) == [("x", {"a": 1}, [1])]
    assert field_diffs("x", [{"a": 1}, 2], [{"a": 2}, 2]) == [("x", [{"a": 1}, 2], [{"a": 2}, 2])]


def test_normalize_replaces_known_ids_anywhere_and_leaves_the_input_untouched() -> None:
    value = {"a": ["col_1", {"b": "col_1", "col_1": "x"}], "c": "col_2"}
    before = copy.deepcopy(value)
    assert normalize(value, {"col_1": "collection:docs"}) == {
        "a": ["collection:docs", {"b": "collection:docs", "col_1": "x"}],
        "c": "col_2",
    }
    assert value == before


def test_names_of_maps_every_resource_id_to_kind_and_name() -> None:
    a = prod()
    names = names_of(a.resources)
    assert len(names) == 8
    assert names[row(a, "taxonomy", "tree")["taxonomy_id"]] == "taxonomy:tree"
    assert names[row(a, "bucket", "raw")["bucket_id"]] == "bucket:raw"


def test_document_diff_counts_added_removed_changed_and_unchanged() -> None:
    a_docs = [("d1", "h1"), ("d2", "h2"), ("d3", "h3"), ("d4", "h4")]
    b_docs = [("d2", "h2"), ("d3", "h3-new"), ("d4", "h4"), ("d5", "h5"), ("d6", "h6")]
    assert document_diff(a_docs, b_docs) == DocumentDiff(added=2, removed=1, changed=1, unchanged=2)


def test_document_diff_of_empty_sides_is_all_zero_and_not_a_difference() -> None:
    diff = document_diff([], [])
    assert diff == DocumentDiff(added=0, removed=0, changed=0, unchanged=0)
    assert not diff.differs
    assert document_diff([("d1", "h")], []).differs


def test_content_digest_ignores_key_order_and_bucket_id() -> None:
    one = content_digest({"title": "A", "tags": ["x"], "bucket_id": "bkt_1"}, "hello")
    two = content_digest({"bucket_id": "bkt_2", "tags": ["x"], "title": "A"}, "hello")
    assert one == two
    assert one == content_digest({"tags": ["x"], "title": "A"}, "hello")
    assert len(one) == 64


def test_content_digest_changes_with_text_or_payload() -> None:
    base = content_digest({"title": "A"}, "hello")
    assert base != content_digest({"title": "A"}, "hello!")
    assert base != content_digest({"title": "B"}, "hello")
    assert base != content_digest({"title": "A"}, None)
    assert content_digest(None, "t") == content_digest({}, "t")
