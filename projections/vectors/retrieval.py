"""Retriever execution: a retriever's stages (Mixpeek stage IDs), run in order over the
copy-on-write views of its collections; each stage maps a list of documents to another.

- ``feature_search`` embeds each search's query (or takes a vector) with each collection's
  own extractor and searches that collection's view; searches fuse by ``rrf`` (k=60, ranks
  only: weights are ignored) or ``weighted`` (sum of weight * score). After other stages it
  narrows to the documents already there. A pipeline that starts with another stage starts
  from every document of the retriever's collections, at score 0.
- ``rerank`` scores by cosine between its query and a payload field, both embedded by its
  extractor; a document without the field gets -1, the lowest cosine, and goes last.

``{{INPUT.x}}`` (``{{INPUT.a.b}}`` nested) is replaced in every string parameter; a string
that is only a template keeps the input's type (a number stays a number).
"""

from __future__ import annotations

import json
import math
import operator
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from domain.values import STAGE_TYPES
from projections.vectors.extractors import FeatureExtractor, get_extractor
from projections.vectors.searches import InvalidSearch, own_collections, query_of, searched
from projections.vectors.views import CopyOnWrite

RRF_K = 60
MAX_EF = 4096  # a feature_search's hnsw_ef at most
DEFAULT_RERANK_EXTRACTOR: dict[str, Any] = {"feature_extractor_name": "text_extractor"}
_TEMPLATE = re.compile(r"\{\{\s*INPUT\.([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*)\s*\}\}")
_MISSING = object()


class RetrievalError(Exception):
    """Any reason a retriever cannot run."""


class MissingInput(RetrievalError, ValueError):
    def __init__(self, names: Sequence[str], where: str = "") -> None:
        self.names = list(names)
        listed = ", ".join(repr(n) for n in self.names)
        super().__init__(f"missing input{'s' if len(self.names) > 1 else ''} {listed}{where}")


class UnsupportedStage(RetrievalError, ValueError):
    def __init__(self, stage_id: str, stage_name: str) -> None:
        self.stage_id = stage_id
        self.supported = sorted(STAGES)
        known = " (a Mixpeek stage this engine does not run)" if stage_id in STAGE_TYPES else ""
        super().__init__(
            f"stage {stage_name!r} has unsupported stage_id {stage_id!r}{known}; "
            f"supported stage_ids: {', '.join(self.supported)}"
        )


class InvalidStageParameters(RetrievalError, ValueError):
    """A stage's parameters are malformed."""


class CollectionNotFound(RetrievalError, LookupError):
    """The retriever names a collection the caller did not pass."""


class CollectionNotReady(RetrievalError):
    def __init__(self, collection_id: str, status: object) -> None:
        self.collection_id = collection_id
        self.status = status
        super().__init__(
            f"collection {collection_id!r} is not ready (status: {status}): it must be "
            f"reprocessed (POST /v1/collections/{collection_id}/trigger) before it can be searched"
        )


@dataclass
class Document:
    document_id: str
    collection_id: str
    score: float
    payload: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return self.collection_id, self.document_id


@dataclass
class StageTiming:
    stage_name: str
    stage_id: str
    duration_ms: float
    documents_in: int
    documents_out: int


@dataclass
class Pagination:
    limit: int
    offset: int
    total: int
    has_more: bool


@dataclass
class ExecutionResult:
    documents: list[Document]
    stage_timings: list[StageTiming]
    total_ms: float
    pagination: Pagination

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- templates


def get_path(data: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path in nested dicts (digits index lists), or ``default``."""
    value = data
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return default
    return value


def render(value: Any, inputs: Mapping[str, Any], where: str = "") -> Any:
    """``value`` with every ``{{INPUT.path}}`` replaced, recursively in dicts and lists."""
    if isinstance(value, Mapping):
        return {k: render(v, inputs, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, inputs, where) for v in value]
    if not isinstance(value, str):
        return value

    def lookup(name: str) -> Any:
        found = get_path(inputs, name, _MISSING)
        if found is _MISSING or found is None:
            raise MissingInput([name], where)
        return found

    whole = _TEMPLATE.fullmatch(value.strip())
    if whole:
        return lookup(whole.group(1))

    def text(match: re.Match[str]) -> str:
        found = lookup(match.group(1))
        return found if isinstance(found, str) else json.dumps(found)

    return _TEMPLATE.sub(text, value)


def check_inputs(input_schema: Mapping[str, Any], inputs: Mapping[str, Any]) -> None:
    required = [k for k, v in input_schema.items() if isinstance(v, Mapping) and v.get("required")]
    if missing := [name for name in required if inputs.get(name) is None]:
        raise MissingInput(missing, " required by the retriever's input_schema")


# ------------------------------------------------------------------------------ stages


ExtractorFor = Callable[[Mapping[str, Any]], FeatureExtractor]


@dataclass
class Context:
    """What stages share during one execution."""

    cow: CopyOnWrite
    extractor_for: ExtractorFor
    collection_ids: list[str]
    collections: Mapping[str, Mapping[str, Any]]
    started: bool = False  # a stage ran already
    extractors: dict[str, FeatureExtractor] = field(default_factory=dict)

    def extractor(self, feature_extractor: Mapping[str, Any]) -> FeatureExtractor:
        key = json.dumps(feature_extractor, sort_keys=True, default=str)
        if key not in self.extractors:
            self.extractors[key] = self.extractor_for(feature_extractor)
        return self.extractors[key]

    def all_documents(self) -> list[Document]:
        return [
            Document(p.id, cid, 0.0, p.payload)
            for cid in self.collection_ids
            if self.cow.has_view(cid)
            for p in self.cow.documents(cid, with_vectors=False)
        ]


Stage = Callable[[Context, list[Document], dict[str, Any]], list[Document]]


def _int(params: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidStageParameters(f"{key} must be a non-negative integer, not {value!r}")
    return value


def _field(params: Mapping[str, Any]) -> str:
    name = params.get("field")
    if not isinstance(name, str) or not name:
        raise InvalidStageParameters("field must be a non-empty string")
    return name


def feature_search(ctx: Context, docs: list[Document], params: dict[str, Any]) -> list[Document]:
    searches = params.get("searches")
    if not isinstance(searches, list) or not searches:
        raise InvalidStageParameters("searches must be a non-empty list")
    fusion = params.get("fusion", "rrf")
    if fusion not in ("rrf", "weighted"):
        raise InvalidStageParameters(f"fusion must be 'rrf' or 'weighted', not {fusion!r}")
    fused: dict[tuple[str, str], Document] = {}
    for search in searches:
        if not isinstance(search, Mapping):
            raise InvalidStageParameters(f"each search must be an object, not {search!r}")
        weight = float(search.get("weight", 1.0))
        for rank, hit in enumerate(_search(ctx, search), start=1):
            doc = fused.setdefault(hit.key, Document(hit.document_id, hit.collection_id, 0.0, {}))
            doc.payload = doc.payload or hit.payload
            doc.score += 1.0 / (RRF_K + rank) if fusion == "rrf" else weight * hit.score
    ranked = sorted(fused.values(), key=lambda d: -d.score)
    if ctx.started:  # after other stages: narrow to what is there
        present = {d.key for d in docs}
        ranked = [d for d in ranked if d.key in present]
    return ranked[: _int(params, "final_top_k", 10)]


def _search(ctx: Context, search: Mapping[str, Any]) -> list[Document]:
    """One search over its collections, best first, cut to its top_k."""
    try:
        query = query_of(search.get("query"))
        collections = searched(ctx.collection_ids, ctx.collections, search)
    except InvalidSearch as e:
        raise InvalidStageParameters(str(e)) from e
    top_k = _int(search, "top_k", 10)
    exact, ef = _accuracy(search)
    hits: list[Document] = []
    for cid in collections:
        if not ctx.cow.has_view(cid):
            continue  # no document was ever written
        if isinstance(query, str):
            extractor = ctx.extractor(ctx.collections[cid]["feature_extractor"])
            vector = extractor.embed([query])[0]
        elif isinstance(query, list) and all(isinstance(x, int | float) for x in query):
            vector = [float(x) for x in query]
        else:
            raise InvalidStageParameters(f"query must be a string or a vector, not {query!r}")
        found = ctx.cow.search(cid, vector, None, top_k, exact=exact, ef=ef)
        hits += [Document(h.id, cid, h.score, h.payload) for h in found]
    return sorted(hits, key=lambda d: -d.score)[:top_k]


def _accuracy(search: Mapping[str, Any]) -> tuple[bool, int | None]:
    """A search's ``exact`` (no index: exact, slower) and ``hnsw_ef`` (the index's beam
    width: higher finds more of the true nearest, slower), as Qdrant's search params."""
    exact, ef = search.get("exact", False), search.get("hnsw_ef")
    if not isinstance(exact, bool):
        raise InvalidStageParameters(f"exact must be true or false, not {exact!r}")
    if ef is not None and (type(ef) is not int or not 1 <= ef <= MAX_EF):
        raise InvalidStageParameters(f"hnsw_ef must be an integer from 1 to {MAX_EF}, not {ef!r}")
    return exact, ef


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "in": lambda actual, value: actual in value,
    "contains": lambda actual, value: value in actual,
}


def attribute_filter(ctx: Context, docs: list[Document], params: dict[str, Any]) -> list[Document]:
    name, op, value = _field(params), params.get("operator", "eq"), params.get("value")
    if op not in _OPERATORS:
        raise InvalidStageParameters(f"operator must be one of {', '.join(_OPERATORS)}: {op!r}")

    def matches(doc: Document) -> bool:
        try:
            return bool(_OPERATORS[op](get_path(doc.payload, name), value))
        except TypeError:  # a missing field, a string against a number...: no match
            return False

    return [d for d in docs if matches(d)]


def sort_attribute(ctx: Context, docs: list[Document], params: dict[str, Any]) -> list[Document]:
    name, direction = _field(params), params.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise InvalidStageParameters(f"direction must be 'asc' or 'desc', not {direction!r}")

    def key(doc: Document) -> tuple[int, Any]:  # numbers, then strings, then anything else
        value = get_path(doc.payload, name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return 0, value
        return (1, value) if isinstance(value, str) else (2, json.dumps(value, default=str))

    present = [d for d in docs if get_path(d.payload, name) is not None]
    missing = [d for d in docs if get_path(d.payload, name) is None]
    return sorted(present, key=key, reverse=direction == "desc") + missing


def limit(ctx: Context, docs: list[Document], params: dict[str, Any]) -> list[Document]:
    return docs[: _int(params, "limit")]


def deduplicate(ctx: Context, docs: list[Document], params: dict[str, Any]) -> list[Document]:
    name, seen, kept = _field(params), set[str](), list[Document]()
    for doc in docs:
        value = get_path(doc.payload, name)
        key = json.dumps(value, sort_keys=True, default=str)
        if value is None or key not in seen:  # without the field: nothing to compare, kept
            seen.add(key)
            kept.append(doc)
    return kept


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def rerank(ctx: Context, docs: list[Document], params: dict[str, Any]) -> list[Document]:
    query = params.get("query")
    if not isinstance(query, str) or not query:
        raise InvalidStageParameters("query must be a non-empty string")
    name = params.get("field", "text")
    extractor = ctx.extractor(params.get("extractor") or DEFAULT_RERANK_EXTRACTOR)
    texts = {id(d): t for d in docs if isinstance(t := get_path(d.payload, name), str)}
    vectors = iter(extractor.embed([query, *texts.values()]))
    first = next(vectors)
    for doc in docs:
        doc.score = _cosine(first, next(vectors)) if id(doc) in texts else -1.0
    ranked = sorted(docs, key=lambda d: -d.score)  # stable: those without the field stay last
    return ranked if params.get("top_k") is None else ranked[: _int(params, "top_k")]


STAGES: dict[str, Stage] = {
    "feature_search": feature_search,
    "attribute_filter": attribute_filter,
    "sort_attribute": sort_attribute,
    "limit": limit,
    "deduplicate": deduplicate,
    "rerank": rerank,
}


# ------------------------------------------------------------------------------ runner


class RetrieverRunner:
    def __init__(self, cow: CopyOnWrite, extractor_for: ExtractorFor = get_extractor) -> None:
        self.cow = cow
        self.extractor_for = extractor_for

    def execute(
        self,
        retriever: Mapping[str, Any],
        collections: Mapping[str, Mapping[str, Any]],
        inputs: Mapping[str, Any],
        limit: int = 10,
        offset: int = 0,
    ) -> ExecutionResult:
        started = time.perf_counter()
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be non-negative")
        parsed = [_parse_stage(s) for s in retriever.get("stages") or []]
        check_inputs(retriever.get("input_schema") or {}, inputs)
        stages = [(n, sid, render(p, inputs, f" in stage {n!r}")) for n, sid, p in parsed]
        ids = list(retriever.get("collection_ids") or [])
        ctx = Context(self.cow, self.extractor_for, ids, collections)
        _check_collections(ctx, stages)
        docs: list[Document] | None = None
        timings: list[StageTiming] = []
        for name, sid, params in stages:
            t0 = time.perf_counter()
            if docs is None:  # the first stage: a search starts afresh, others from everything
                docs = [] if sid == "feature_search" else ctx.all_documents()
            before = len(docs)
            try:
                docs = STAGES[sid](ctx, docs, params)
            except InvalidStageParameters as e:
                raise InvalidStageParameters(f"stage {name!r} ({sid}): {e}") from e
            ctx.started = True
            elapsed = (time.perf_counter() - t0) * 1000
            timings.append(StageTiming(name, sid, elapsed, before, len(docs)))
        docs = ctx.all_documents() if docs is None else docs
        page = Pagination(limit, offset, len(docs), offset + limit < len(docs))
        total_ms = (time.perf_counter() - started) * 1000
        return ExecutionResult(docs[offset : offset + limit], timings, total_ms, page)


def _parse_stage(stage: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    config = stage.get("config") or {}
    sid = str(config.get("stage_id", ""))
    name = str(stage.get("stage_name") or sid)
    if sid not in STAGES:
        raise UnsupportedStage(sid, name)
    params = config.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise InvalidStageParameters(f"stage {name!r}: parameters must be an object")
    return name, sid, dict(params)


def _check_collections(ctx: Context, stages: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Every collection the retriever reads exists and is ready."""
    wanted = list(ctx.collection_ids)
    for _, sid, params in stages:
        searches = params.get("searches") if sid == "feature_search" else None
        for search in searches if isinstance(searches, list) else []:
            wanted += own_collections(search) if isinstance(search, Mapping) else []
    for cid in dict.fromkeys(wanted):
        if (collection := ctx.collections.get(cid)) is None:
            raise CollectionNotFound(f"collection {cid!r} is not among the given collections")
        if (status := collection.get("status", "ready")) != "ready":
            raise CollectionNotReady(cid, status)
