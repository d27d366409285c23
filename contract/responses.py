"""The HTTP API's response models; the SDK returns the same classes.

Request bodies are the request models of ``contract.requests``.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.values import Count, Identifier

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Stamped(Model):
    created_at: str | None = None
    updated_at: str | None = None
    created_by: str | None = None
    version: int | None = None


class Namespace(Stamped):
    namespace_id: str
    namespace_name: str
    description: str = ""
    source_namespace_id: str | None = None
    clone_task_id: str | None = None


class Bucket(Stamped):
    bucket_id: str
    namespace_id: str
    bucket_name: str
    description: str = ""
    bucket_schema: dict[str, Any] | None = None
    source_bucket_id: str | None = None
    # Mixpeek's: the objects the bucket holds, and their text and metadata in bytes
    object_count: int = 0
    total_size_bytes: int = 0


class Collection(Stamped):
    collection_id: str
    namespace_id: str
    collection_name: str
    description: str = ""
    source: dict[str, Any]
    feature_extractor: dict[str, Any]
    source_collection_id: str | None = None
    vector_mode: str
    status: str

    @field_validator("feature_extractor")
    @classmethod
    def _with_its_id(cls, extractor: dict[str, Any]) -> dict[str, Any]:
        """Mixpeek's feature_extractor_id: the extractor's name and version."""
        name, version = extractor.get("feature_extractor_name"), extractor.get("version")
        return {"feature_extractor_id": f"{name}_{version}", **extractor}


class Retriever(Stamped):
    retriever_id: str
    namespace_id: str
    retriever_name: str
    description: str = ""
    collection_ids: list[str]
    stages: list[dict[str, Any]]
    input_schema: dict[str, Any]
    source_retriever_id: str | None = None
    # Mixpeek's: collection_ids again, and the feature_search stage's fusion (null without)
    collection_identifiers: list[str] = []
    fusion: str | None = None

    @model_validator(mode="after")
    def _as_mixpeek_reads_it(self) -> Retriever:
        # each stage's parameters at its top level too, as Mixpeek answers them
        self.stages = [
            {**stage, "parameters": (stage.get("config") or {}).get("parameters") or {}}
            for stage in self.stages
        ]
        self.collection_identifiers = list(self.collection_ids)
        searches = [
            s for s in self.stages if (s.get("config") or {}).get("stage_id") == "feature_search"
        ]
        fusion = searches[0]["parameters"].get("fusion") if searches else None
        self.fusion = fusion if isinstance(fusion, str) else ("rrf" if searches else None)
        return self


class RetrieverUpdated(Retriever):
    """A PATCHed retriever; Mixpeek answers it as {retriever: ...}: both are here."""

    retriever: Retriever | None = None

    @model_validator(mode="after")
    def _as_mixpeek_answers_it(self) -> RetrieverUpdated:
        self.retriever = Retriever.model_validate(self.model_dump(exclude={"retriever"}))
        return self


class Taxonomy(Stamped):
    taxonomy_id: str
    namespace_id: str
    taxonomy_name: str
    description: str = ""
    config: dict[str, Any]
    source_taxonomy_id: str | None = None


class DeepCloneResult(Model):
    task_id: str
    source_namespace_id: str
    namespace_id: str
    mapping: dict[str, dict[str, str]]
    counts: dict[str, int]
    # clone collection ID -> points copied into it (namespace clones that copy vectors)
    points: dict[str, int] = {}


class Task(Model):
    task_id: str
    # Mixpeek's task type: api_namespaces_create (a namespace clone), api_collections_trigger
    # (reprocess), api_taxonomies_execute (apply a taxonomy); envbranch's name is operation
    task_type: str
    operation: str | None = None  # namespace_clone | reprocess | apply_taxonomy
    namespace_id: str
    status: Literal["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED"]
    source_namespace_id: str | None = None
    target_namespace_id: str | None = None
    include_resources: dict[str, bool] | None = None
    progress: dict[str, Any] | None = None
    # namespace_clone: the DeepCloneResult; reprocess: {"collection_id": ...}
    result: DeepCloneResult | dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    # Mixpeek's: the operation, the namespaces, the progress and the result (a namespace
    # clone's mapping, counts and points) in one object; the clone's namespace; a failure
    additional_data: dict[str, Any] | None = None
    outputs: list[Any] | None = None
    error: str | None = None


class Pagination(Model):
    total: int
    limit: int
    offset: int
    has_more: bool
    # Mixpeek's names for the same page
    page: int | None = None
    page_size: int | None = None
    total_pages: int | None = None


class Page(Model, Generic[T]):
    results: list[T]
    pagination: Pagination
    total_count: int | None = None  # Mixpeek's: pagination.total


class Deleted(Model):
    """What a DELETE did: Mixpeek's success and message, and which resource."""

    success: bool = True
    message: str
    kind: str  # namespace, bucket, collection, retriever or taxonomy
    id: str
    name: str
    command_id: str
    position: int  # of the Deleted event: a clone as_of_position one before restores


class NamespaceCloneResponse(Model):
    namespace: Namespace
    source_namespace_id: str
    status: Literal["cloning", "ready", "failed"]
    task_id: str
    # Mixpeek's: the first retriever cloned, and what was cloned (once ready)
    primary_retriever_id: str | None = None
    cloned_resources: dict[str, int] | None = None


class CollectionCloneResponse(Model):
    collection: Collection
    source_collection_id: str


class RetrieverCloneResponse(Model):
    retriever: Retriever
    source_retriever_id: str


class TaxonomyCloneResponse(Model):
    taxonomy: Taxonomy
    source_taxonomy_id: str


class LineageEdge(Model):
    source_id: str
    clone_id: str
    kind: str
    namespace_id: str | None = None
    position: int
    occurred_at: str | None = None
    actor: str | None = None


class Lineage(Model):
    resource_id: str
    ancestors: list[LineageEdge]
    descendants: list[LineageEdge]


class AuditEntry(Model):
    position: int
    event_id: str
    type: str
    aggregate_id: str
    namespace_id: str | None = None
    command_id: str | None = None
    actor: str | None = None
    occurred_at: str
    data: dict[str, Any]


class DeadLetter(Model):
    """A rejected command on the dead-letter queue, with its reason and whether a command
    with its command_id was applied since."""

    dlq_offset: int
    rejected_at: str
    code: str
    message: str
    field: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    command_id: str | None = None
    command_type: str | None = None
    command: dict[str, Any] | None = None  # the original command, when it is a JSON object
    raw: str | None = None  # the start of the original bytes, when they are not
    source_partition: int | None = None
    source_offset: int | None = None
    truncated: bool = False
    applied: bool


class RedriveRequest(Model):
    model_config = ConfigDict(extra="forbid")

    # each is sent again and waited for in turn: a redrive is a few entries at a time
    dlq_offsets: Annotated[list[Count], Field(min_length=1, max_length=100)]


class Redriven(Model):
    dlq_offset: int
    command_id: str | None = None
    # applied: sent again and applied now; already_applied: nothing sent; rejected: sent
    # again (or unreadable) and refused, see message; timeout: sent again, no outcome in
    # time (see later whether it is applied); not_found: no such entry
    outcome: Literal["applied", "already_applied", "rejected", "timeout", "not_found"]
    message: str | None = None
    position: int | None = None  # of the receipt, when applied now


class RedriveAnswer(Model):
    results: list[Redriven]


class ApiKeyCreateRequest(Model):
    model_config = ConfigDict(extra="forbid")

    principal: Annotated[str, Field(min_length=1, max_length=200)]
    # IDs or names; None: every namespace
    namespaces: Annotated[list[Identifier], Field(max_length=1000)] | None = None


class ApiKey(Model):
    key_id: str
    principal: str
    namespaces: list[str] | None
    created_at: str
    api_key: str | None = None  # only in the answer that created it


class ErrorBody(Model):
    message: str
    type: str  # stable and machine-readable: not_found, duplicate_name, validation_error ...
    code: str | None = None  # Mixpeek's fine-grained code; envbranch's types are that fine
    details: dict[str, Any] | None = None


class ErrorResponse(Model):
    """Mixpeek's error envelope: ``success`` always false, the HTTP status repeated."""

    success: bool = False
    status: int
    error: ErrorBody


# --- refs, evaluations, checkpoints, diff --------------------------------------------


class RefHistoryEntry(Model):
    position: int
    action: str  # create | move | promote | rollback | promotion_refused
    target_id: str
    target_namespace_id: str | None = None  # None for a refused candidate
    previous_target_id: str | None = None
    reason: str = ""
    evaluation_id: str | None = None
    detail: dict[str, Any] | None = None  # rolled_back_to, or a refusal's failures
    actor: str
    command_id: str | None = None
    occurred_at: str


class Ref(Stamped):
    ref_id: str
    namespace_id: str
    ref_name: str
    target_kind: str
    target_id: str
    target_namespace_id: str
    history: list[RefHistoryEntry]


class EvaluationSet(Stamped):
    evaluation_set_id: str
    namespace_id: str
    evaluation_set_name: str
    description: str = ""
    set_type: str
    id_field: str
    label_field: str | None = None
    queries: list[dict[str, Any]]
    documents: list[dict[str, Any]]


class EvaluationRunResult(Model):
    target_id: str
    target_kind: str | None = None
    metrics: dict[str, float]


class Evaluation(Model):
    evaluation_id: str
    namespace_id: str
    evaluation_set_id: str
    set_type: str
    k: int
    runs: list[EvaluationRunResult]
    agreement: float | None = None
    position: int
    created_at: str
    created_by: str


class PromotionResult(Model):
    promoted: bool
    ref: Ref
    evaluation: Evaluation


class Checkpoint(Model):
    position: int
    digests: dict[str, str]


# --- health ---------------------------------------------------------------------------


class Live(Model):
    status: Literal["live"] = "live"


class Ready(Model):
    status: Literal["ready"] = "ready"


class PartitionLag(Model):
    topic: str
    partition: int
    position: int  # the next offset to process
    end: int | None = None  # the end offset as last fetched (None before the first fetch)
    lag: int | None = None


class ComponentHealth(Model):
    name: str
    state: Literal["starting", "ready"]
    waiting_for: str | None = None
    position: int | None = None  # the last event position it has handled
    lag: int | None = None  # events behind the store, or commands behind the partitions' ends
    partitions: list[PartitionLag] | None = None


class Health(Model):
    status: Literal["ok", "starting"]
    read_model_position: int
    event_store_position: int | None = None
    read_model_lag: int | None = None
    components: list[ComponentHealth] = []
