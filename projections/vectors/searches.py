"""A feature_search search: its query and the collections it reads, in envbranch's form
and in Mixpeek's (query {input_mode, value | text}, feature_uri, collection_identifiers)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any


class InvalidSearch(ValueError):
    """A search the stage cannot run as written."""


def query_of(query: Any) -> Any:
    """A search's query: a string or a vector, or Mixpeek's {input_mode, value | text}."""
    if not isinstance(query, Mapping):
        return query
    mode = query.get("input_mode", "text")
    if mode == "text":
        return query.get("value", query.get("text"))
    if mode == "vector":
        return query.get("value")
    raise InvalidSearch(
        f"query input_mode {mode!r} is not supported: 'text' or 'vector' (envbranch embeds "
        "text with each collection's extractor)"
    )


def searched(
    retriever_collections: Sequence[str],
    collections: Mapping[str, Mapping[str, Any]],
    search: Mapping[str, Any],
) -> list[str]:
    """The collections a search reads: its own (collection_ids, or Mixpeek's
    collection_identifiers) or the retriever's; with Mixpeek's feature_uri
    (mixpeek://{extractor}@{version}/{output}), those whose extractor it names."""
    ids = list(own_collections(search) or retriever_collections)
    uri = search.get("feature_uri")
    if uri is None:
        return ids
    found = re.fullmatch(r"mixpeek://([^@/]+)@([^/]+)(?:/.*)?", str(uri))
    if found is None:
        raise InvalidSearch(
            f"feature_uri {uri!r} is not of the form mixpeek://{{extractor}}@{{version}}/{{output}}"
        )
    name, version = found.groups()
    extractors = {cid: collections[cid]["feature_extractor"] for cid in ids}
    matching = [
        cid
        for cid, e in extractors.items()
        if e.get("feature_extractor_name") == name and e.get("version", "v1") == version
    ]
    if not matching:
        have = sorted(
            {f"{e.get('feature_extractor_name')}@{e.get('version')}" for e in extractors.values()}
        )
        raise InvalidSearch(
            f"feature_uri {uri!r} names {name}@{version}; the collections searched have {have}"
        )
    return matching


def own_collections(search: Mapping[str, Any]) -> list[str]:
    own = search.get("collection_ids") or search.get("collection_identifiers") or []
    return list(own) if isinstance(own, list) else []
