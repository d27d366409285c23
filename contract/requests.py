"""The bodies of the HTTP API's write calls (Mixpeek's field names).

Shared by the server and the SDK; each command body (``contract.commands``) is one of
these plus the identifiers the API takes from the path and the X-Namespace header.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from domain.mixpeek_options import (
    ADDED,
    BatchOf1000,
    FalseByDefault,
    FourWorkers,
    ManagedMode,
    TrueByDefault,
    Unsupported,
)
from domain.packed_vectors import size_of
from domain.values import (
    BucketObject,
    BucketSchema,
    CollectionSource,
    CreateDescription,
    Description,
    Document,
    FeatureExtractor,
    Identifier,
    IncludeResources,
    JsonInteger,
    Position,
    ResourceName,
    Stage,
    TaxonomyConfig,
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NamespaceCreateRequest(Body):
    namespace_name: ResourceName
    description: CreateDescription = ""
    # Mixpeek's: a managed namespace is what envbranch has (no bring-your-own-vector one)
    mode: ManagedMode = None
    namespace_id: Unsupported = None
    namespace_type: Unsupported = None
    scope: Unsupported = None
    features: Unsupported = None
    feature_extractors: Unsupported = None
    vector_configs: Unsupported = None
    payload_indexes: Unsupported = None
    auto_create_indexes: Unsupported = None
    adaptive_indexing: Unsupported = None
    ttl_seconds: Unsupported = None
    infrastructure: Unsupported = None
    trusted_issuers: Unsupported = None
    tiering: Unsupported = None
    spend_budget: Unsupported = None
    cost_cap_override: Unsupported = None


class NamespaceUpdateRequest(Body):
    namespace_name: ResourceName | None = None
    description: Description | None = None
    # Mixpeek's settings of a namespace, which envbranch does not have
    feature_extractors: Unsupported = None
    payload_indexes: Unsupported = None
    auto_create_indexes: Unsupported = None
    adaptive_indexing: Unsupported = None
    repair_vectors: Unsupported = None
    infrastructure: Unsupported = None
    trusted_issuers: Unsupported = None
    spend_budget: Unsupported = None
    pinned: Unsupported = None
    tiering: Unsupported = None
    expires_at: Unsupported = None
    ttl_seconds: Unsupported = None
    cost_cap_override: Unsupported = None


MODE_VECTORS = {"copy": "copy", "branch": "reuse"}


class NamespaceCloneRequest(Body):
    namespace_name: ResourceName
    description: Description | None = None
    include_resources: IncludeResources = IncludeResources()
    # copy: the clone's collections get vectors of their own (the task waits for the copy);
    # reuse: they share the source's points, copy-on-write, and the task completes at once.
    vectors: Literal["copy", "reuse"] = "copy"
    # Mixpeek's name for the same choice: copy, or branch (a copy-on-write fork: reuse).
    mode: Annotated[Literal["copy", "branch"] | None, ADDED] = None
    source_organization_id: Unsupported = None  # Mixpeek's
    ttl_seconds: Unsupported = None
    # Clone the environment as it stood at this log position (see the README for what the
    # vector design allows: data unchanged since then).
    as_of_position: Position | None = None

    @model_validator(mode="before")
    @classmethod
    def _mode_chooses_vectors(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("mode"), str):
            return data
        if data["mode"] not in MODE_VECTORS:
            return data  # no mode, or one the field refuses by name
        vectors = MODE_VECTORS[data["mode"]]
        if data.get("vectors", vectors) != vectors:
            raise ValueError(
                f"mode {data['mode']!r} means vectors {vectors!r}, not {data['vectors']!r}: "
                "send one of the two"
            )
        return {**data, "vectors": vectors}


class BucketCreateRequest(Body):
    bucket_name: ResourceName
    description: CreateDescription = ""
    bucket_schema: BucketSchema
    unique_key: Unsupported = None  # Mixpeek's
    metadata: Unsupported = None
    storage_class: Unsupported = None
    destination: Unsupported = None
    ingest_filter: Unsupported = None
    source_adapter: Unsupported = None


class BucketUpdateRequest(Body):
    bucket_name: ResourceName | None = None
    description: Description | None = None
    metadata: Unsupported = None  # Mixpeek's
    source_adapter: Unsupported = None
    unique_key: Unsupported = None
    destination: Unsupported = None
    ingest_filter: Unsupported = None


class BucketObjectsAddRequest(Body):
    objects: Annotated[list[BucketObject], Field(min_length=1, max_length=1000)]


class CollectionCreateRequest(Body):
    collection_name: ResourceName
    description: CreateDescription = ""
    source: CollectionSource
    feature_extractor: FeatureExtractor
    enabled: TrueByDefault = None  # Mixpeek's; its SDK always sends it
    input_schema: Unsupported = None
    features: Unsupported = None
    metadata: Unsupported = None
    schedule: Unsupported = None
    taxonomy_applications: Unsupported = None
    cluster_applications: Unsupported = None
    alert_applications: Unsupported = None
    retriever_enrichments: Unsupported = None
    retriever_transform: Unsupported = None
    embedding_task: Unsupported = None


class CollectionUpdateRequest(Body):
    collection_name: ResourceName | None = None
    description: Description | None = None
    enabled: TrueByDefault = None  # Mixpeek's
    metadata: Unsupported = None


class CollectionCloneRequest(Body):
    collection_name: ResourceName
    description: Description | None = None
    source: CollectionSource | None = None
    feature_extractor: FeatureExtractor | None = None
    # the collection as it stood at this log position (its name then resolves as of then)
    as_of_position: Position | None = None
    enabled: TrueByDefault = None  # Mixpeek's
    metadata: Unsupported = None
    taxonomy_applications: Unsupported = None


class DocumentsWriteRequest(Body):
    documents: Annotated[list[Document], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _one_vector_size(self) -> DocumentsWriteRequest:
        sizes = {size_of(d.vector) for d in self.documents if d.vector is not None}
        if len(sizes) > 1:
            raise ValueError(f"documents' vectors differ in size: {sorted(sizes)}")
        return self


class DocumentsDeleteRequest(Body):
    document_ids: Annotated[list[Identifier], Field(min_length=1, max_length=1000)]


InputSchema = dict[str, dict[str, Any]]


class RetrieverCreateRequest(Body):
    retriever_name: ResourceName
    description: CreateDescription = ""
    collection_identifiers: Annotated[list[Identifier], Field(min_length=1)]
    stages: Annotated[list[Stage], Field(min_length=1)]
    input_schema: InputSchema = Field(default_factory=dict)
    requires_subscription: FalseByDefault = None  # Mixpeek's; its SDK always sends it
    visibility: Unsupported = None
    marketplace_listing_id: Unsupported = None
    budget_limits: Unsupported = None
    tags: Unsupported = None
    metadata: Unsupported = None
    display_config: Unsupported = None


class RetrieverUpdateRequest(Body):
    retriever_name: ResourceName | None = None
    description: Description | None = None
    visibility: Unsupported = None  # Mixpeek's
    marketplace_listing_id: Unsupported = None
    requires_subscription: FalseByDefault = None
    tags: Unsupported = None
    metadata: Unsupported = None
    display_config: Unsupported = None


class RetrieverCloneRequest(Body):
    retriever_name: ResourceName
    description: Description | None = None
    collection_identifiers: Annotated[list[Identifier], Field(min_length=1)] | None = None
    stages: Annotated[list[Stage], Field(min_length=1)] | None = None
    input_schema: InputSchema | None = None
    budget_limits: Unsupported = None  # Mixpeek's
    tags: Unsupported = None
    display_config: Unsupported = None


class TaxonomyCreateRequest(Body):
    taxonomy_name: ResourceName
    description: CreateDescription = ""
    config: TaxonomyConfig
    metadata: Unsupported = None  # Mixpeek's


class TaxonomyUpdateRequest(Body):
    taxonomy_name: ResourceName | None = None
    description: Description | None = None
    metadata: Unsupported = None  # Mixpeek's


class TaxonomyCloneRequest(Body):
    taxonomy_name: ResourceName
    description: Description | None = None
    config: TaxonomyConfig | None = None


class ApplyTaxonomyRequest(Body):
    # the taxonomy (an ID or a name), or Mixpeek's taxonomy_id (an ID): one of the two
    taxonomy_identifier: Identifier | None = None
    taxonomy_id: Annotated[Identifier | None, ADDED] = None
    batch_size: BatchOf1000 = None  # Mixpeek's; its SDK always sends the two defaults
    parallelism: FourWorkers = None
    scroll_filters: Unsupported = None
    budget_limits: Unsupported = None

    @model_validator(mode="before")
    @classmethod
    def _either_name(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("taxonomy_id") is not None:
            given = data.get("taxonomy_identifier")
            given = data["taxonomy_id"] if given is None else given
            if given != data["taxonomy_id"]:
                raise ValueError("taxonomy_id and taxonomy_identifier differ: send one")
            return {**data, "taxonomy_identifier": given, "taxonomy_id": None}
        if data.get("taxonomy_identifier") is None:
            raise ValueError("taxonomy_identifier (or Mixpeek's taxonomy_id) is required")
        return data


RefName = ResourceName


Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]  # strict: true is not 1.0


TargetKind = Literal["namespace", "collection", "retriever", "taxonomy"]


Reason = Annotated[str, Field(max_length=2000)]


class RefCreateRequest(Body):
    ref_name: RefName
    target_kind: TargetKind
    target: Identifier  # an ID (in any namespace) or a name in this namespace
    reason: Reason = ""


class RefMoveRequest(Body):
    target: Identifier
    reason: Reason = ""


class RefRollbackRequest(Body):
    """Exactly one of: ``to: "previous"``, ``position`` (the target the ref had at that
    log position) or ``time`` (the target it had at that moment)."""

    to: Literal["previous"] | None = None
    position: Position | None = None
    time: datetime | None = None
    reason: Reason = ""

    @model_validator(mode="after")
    def _one_way(self) -> RefRollbackRequest:
        given = [n for n in ("to", "position", "time") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                'give exactly one of to="previous", position or time '
                f"(got {', '.join(given) or 'none'})"
            )
        if self.time is not None and self.time.tzinfo is None:
            raise ValueError("time needs a timezone, e.g. 2026-11-25T10:00:00Z")
        return self


class Threshold(Body):
    """One rule of a gate. ``min``/``max`` are absolute; ``min_change``/``max_change`` are
    relative to the ref's current target (-0.01: no worse than -1%)."""

    metric: Annotated[str, Field(min_length=1, max_length=100)]
    min: Finite | None = None
    max: Finite | None = None
    min_change: Finite | None = None
    max_change: Finite | None = None

    @model_validator(mode="after")
    def _has_a_rule(self) -> Threshold:
        if all(getattr(self, n) is None for n in ("min", "max", "min_change", "max_change")):
            raise ValueError(
                f"threshold for {self.metric!r} has no rule: give min, max, min_change or "
                "max_change"
            )
        for low, high in (("min", "max"), ("min_change", "max_change")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"threshold for {self.metric!r}: {low} {a} is above {high} {b}")
        return self


class Gate(Body):
    thresholds: Annotated[list[Threshold], Field(min_length=1, max_length=50)]


class RefPromoteRequest(Body):
    """The HTTP call: evaluate ``candidate`` and the ref's current target on the set, then
    promote through the gate (the command carries the recorded evaluation)."""

    candidate: Identifier
    evaluation_set: Identifier
    gate: Gate
    k: Annotated[int, Strict(), Field(ge=1, le=1000), JsonInteger] = 10
    reason: Reason = ""


class EvaluationRunRequest(Body):
    """Run a set against a candidate and, optionally, a baseline to compare with."""

    evaluation_set: Identifier
    candidate: Identifier
    baseline: Identifier | None = None
    k: Annotated[int, Strict(), Field(ge=1, le=1000), JsonInteger] = 10


class JudgedQuery(Body):
    query_id: Annotated[str, Field(min_length=1, max_length=200)]
    inputs: dict[str, Any]
    # document (by the set's id_field) -> graded relevance, 0 = not relevant
    judgments: Annotated[
        dict[str, Annotated[int, Strict(), Field(ge=0, le=10), JsonInteger]], Field(min_length=1)
    ]


class LabelledDocument(Body):
    document_id: Annotated[str, Field(min_length=1, max_length=200)]
    text: Annotated[str, Field(min_length=1, max_length=20000)]
    expected: dict[str, str | None]


class EvaluationSetCreateRequest(Body):
    evaluation_set_name: ResourceName
    description: Description = ""
    set_type: Literal["retriever", "taxonomy"]
    # which field of a result's payload identifies a document for the judgments
    id_field: Annotated[str, Field(min_length=1, max_length=200)] = "document_id"
    # which enrichment field holds a taxonomy's label
    label_field: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    queries: Annotated[list[JudgedQuery], Field(max_length=5000)] = Field(default_factory=list)
    documents: Annotated[list[LabelledDocument], Field(max_length=5000)] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _fits_its_type(self) -> EvaluationSetCreateRequest:
        if self.set_type == "retriever":
            if not self.queries or self.documents:
                raise ValueError("a retriever evaluation set has queries and no documents")
            ids = [q.query_id for q in self.queries]
        else:
            if not self.documents or self.queries:
                raise ValueError("a taxonomy evaluation set has documents and no queries")
            if self.label_field is None:
                raise ValueError("a taxonomy evaluation set needs label_field")
            missing = [d.document_id for d in self.documents if self.label_field not in d.expected]
            if missing:
                raise ValueError(
                    f"documents {missing[:5]} have no expected {self.label_field!r} label"
                )
            ids = [d.document_id for d in self.documents]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate ids in the set: {duplicates[:5]}")
        return self


class EvaluationRun(Body):
    target_id: Identifier  # an ID, or a name in the namespace
    metrics: dict[str, Finite]


class CheckpointRequest(Body):
    reason: Reason = ""
