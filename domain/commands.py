"""Commands: one JSON envelope ``{command_id, type, body, actor, issued_at}``.

Bodies follow the public Mixpeek API's field names. A command that acts on an
existing resource names it the way the API paths do (``*_identifier``: an ID,
or a name resolved within the namespace); a command that creates inside a
namespace carries ``namespace_identifier``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from domain import json_limits
from domain.errors import CommandRejected, ErrorCode
from domain.values import (
    BucketObject,
    BucketSchema,
    CollectionSource,
    Count,
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


class CommandEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command_id: Annotated[str, Field(min_length=1, max_length=256)]
    type: Annotated[str, Field(min_length=1, max_length=100)]
    body: dict[str, Any]
    actor: Annotated[str, Field(min_length=1, max_length=200)]
    issued_at: datetime | None = None


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InNamespace(Body):
    namespace_identifier: Identifier


# Each request model is the body of the matching HTTP call; the command adds the
# identifiers that the API takes from the path and the X-Namespace header.

# --- namespaces -----------------------------------------------------------


class NamespaceCreateRequest(Body):
    namespace_name: ResourceName
    description: Description = ""


class NamespaceUpdateRequest(Body):
    namespace_name: ResourceName | None = None
    description: Description | None = None


class NamespaceCloneRequest(Body):
    namespace_name: ResourceName
    description: Description | None = None
    include_resources: IncludeResources = IncludeResources()
    # copy: the clone's collections get vectors of their own (the task waits for the copy);
    # reuse: they share the source's points, copy-on-write, and the task completes at once.
    vectors: Literal["copy", "reuse"] = "copy"
    # Clone the environment as it stood at this log position (see the README for what the
    # vector design allows: data unchanged since then).
    as_of_position: Position | None = None


class CreateNamespace(NamespaceCreateRequest):
    pass


class UpdateNamespace(InNamespace, NamespaceUpdateRequest):
    pass


class CloneNamespace(InNamespace, NamespaceCloneRequest):
    pass


# --- buckets --------------------------------------------------------------


class BucketCreateRequest(Body):
    bucket_name: ResourceName
    description: Description = ""
    bucket_schema: BucketSchema


class BucketUpdateRequest(Body):
    bucket_name: ResourceName | None = None
    description: Description | None = None


class CreateBucket(InNamespace, BucketCreateRequest):
    pass


class UpdateBucket(InNamespace, BucketUpdateRequest):
    bucket_identifier: Identifier


class BucketObjectsAddRequest(Body):
    objects: Annotated[list[BucketObject], Field(min_length=1, max_length=1000)]


class AddObjects(InNamespace, BucketObjectsAddRequest):
    bucket_identifier: Identifier


# --- collections ----------------------------------------------------------


class CollectionCreateRequest(Body):
    collection_name: ResourceName
    description: Description = ""
    source: CollectionSource
    feature_extractor: FeatureExtractor


class CollectionUpdateRequest(Body):
    collection_name: ResourceName | None = None
    description: Description | None = None


class CollectionCloneRequest(Body):
    collection_name: ResourceName
    description: Description | None = None
    source: CollectionSource | None = None
    feature_extractor: FeatureExtractor | None = None
    # the collection as it stood at this log position (its name then resolves as of then)
    as_of_position: Position | None = None


class CreateCollection(InNamespace, CollectionCreateRequest):
    pass


class DocumentsWriteRequest(Body):
    documents: Annotated[list[Document], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _one_vector_size(self) -> DocumentsWriteRequest:
        sizes = {len(d.vector) for d in self.documents if d.vector is not None}
        if len(sizes) > 1:
            raise ValueError(f"documents' vectors differ in size: {sorted(sizes)}")
        return self


class DocumentsDeleteRequest(Body):
    document_ids: Annotated[list[Identifier], Field(min_length=1, max_length=1000)]


class WriteDocuments(InNamespace, DocumentsWriteRequest):
    collection_identifier: Identifier


class DeleteDocuments(InNamespace, DocumentsDeleteRequest):
    collection_identifier: Identifier


class UpdateCollection(InNamespace, CollectionUpdateRequest):
    collection_identifier: Identifier


class CloneCollection(InNamespace, CollectionCloneRequest):
    collection_identifier: Identifier


# --- retrievers -----------------------------------------------------------

InputSchema = dict[str, dict[str, Any]]


class RetrieverCreateRequest(Body):
    retriever_name: ResourceName
    description: Description = ""
    collection_identifiers: Annotated[list[Identifier], Field(min_length=1)]
    stages: Annotated[list[Stage], Field(min_length=1)]
    input_schema: InputSchema = Field(default_factory=dict)


class RetrieverUpdateRequest(Body):
    retriever_name: ResourceName | None = None
    description: Description | None = None


class RetrieverCloneRequest(Body):
    retriever_name: ResourceName
    description: Description | None = None
    collection_identifiers: Annotated[list[Identifier], Field(min_length=1)] | None = None
    stages: Annotated[list[Stage], Field(min_length=1)] | None = None
    input_schema: InputSchema | None = None


class CreateRetriever(InNamespace, RetrieverCreateRequest):
    pass


class UpdateRetriever(InNamespace, RetrieverUpdateRequest):
    retriever_identifier: Identifier


class CloneRetriever(InNamespace, RetrieverCloneRequest):
    retriever_identifier: Identifier


# --- taxonomies -----------------------------------------------------------


class TaxonomyCreateRequest(Body):
    taxonomy_name: ResourceName
    description: Description = ""
    config: TaxonomyConfig


class TaxonomyUpdateRequest(Body):
    taxonomy_name: ResourceName | None = None
    description: Description | None = None


class TaxonomyCloneRequest(Body):
    taxonomy_name: ResourceName
    description: Description | None = None
    config: TaxonomyConfig | None = None


class CreateTaxonomy(InNamespace, TaxonomyCreateRequest):
    pass


class UpdateTaxonomy(InNamespace, TaxonomyUpdateRequest):
    taxonomy_identifier: Identifier


class CloneTaxonomy(InNamespace, TaxonomyCloneRequest):
    taxonomy_identifier: Identifier


# --- tasks (reported by the vector processor) --------------------------------


class TriggerReprocess(InNamespace):
    collection_identifier: Identifier


class ApplyTaxonomyRequest(Body):
    taxonomy_identifier: Identifier


class ApplyTaxonomy(InNamespace, ApplyTaxonomyRequest):
    collection_identifier: Identifier


class ReportReprocessProgress(Body):
    task_id: Identifier
    done: Count
    total: Count
    finished: bool


class ReportCopyProgress(Body):
    task_id: Identifier
    collection_id: Identifier
    copied: Count
    total: Count
    done: bool


# --- refs, evaluations, promotion ---------------------------------------------

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


class CreateRef(InNamespace, RefCreateRequest):
    pass


class MoveRef(InNamespace, RefMoveRequest):
    ref_name: RefName


class RollbackRef(InNamespace, RefRollbackRequest):
    ref_name: RefName


class PromoteRef(InNamespace):
    """Move the ref to ``candidate`` if the gate holds on the recorded evaluation, whose
    runs are the candidate and (for relative thresholds) the ref's current target."""

    ref_name: RefName
    candidate: Identifier
    evaluation_id: Identifier
    gate: Gate
    reason: Reason = ""


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


class CreateEvaluationSet(InNamespace, EvaluationSetCreateRequest):
    pass


class EvaluationRun(Body):
    target_id: Identifier  # an ID, or a name in the namespace
    metrics: dict[str, Finite]


class RecordEvaluation(InNamespace):
    """What an evaluation measured (run by the API, recorded as an event). A publisher
    may choose ``evaluation_id`` (``eval_`` + 32 hex digits) to refer to it at once."""

    evaluation_id: Identifier | None = None
    evaluation_set_identifier: Identifier
    k: Annotated[int, Strict(), Field(ge=1, le=1000), JsonInteger]
    runs: Annotated[list[EvaluationRun], Field(min_length=1, max_length=2)]
    agreement: Finite | None = None


class CheckpointRequest(Body):
    reason: Reason = ""


class RequestCheckpoint(CheckpointRequest):
    pass


BODIES: dict[str, type[Body]] = {
    "namespaces.create": CreateNamespace,
    "namespaces.update": UpdateNamespace,
    "namespaces.clone": CloneNamespace,
    "buckets.create": CreateBucket,
    "buckets.update": UpdateBucket,
    "buckets.objects.add": AddObjects,
    "collections.create": CreateCollection,
    "collections.update": UpdateCollection,
    "collections.clone": CloneCollection,
    "collections.documents.write": WriteDocuments,
    "collections.documents.delete": DeleteDocuments,
    "retrievers.create": CreateRetriever,
    "retrievers.update": UpdateRetriever,
    "retrievers.clone": CloneRetriever,
    "taxonomies.create": CreateTaxonomy,
    "taxonomies.update": UpdateTaxonomy,
    "taxonomies.clone": CloneTaxonomy,
    "tasks.copy_progress": ReportCopyProgress,
    "collections.trigger": TriggerReprocess,
    "tasks.reprocess_progress": ReportReprocessProgress,
    "collections.apply_taxonomy": ApplyTaxonomy,
    "tasks.apply_progress": ReportReprocessProgress,
    "refs.create": CreateRef,
    "refs.move": MoveRef,
    "refs.promote": PromoteRef,
    "refs.rollback": RollbackRef,
    "evaluation_sets.create": CreateEvaluationSet,
    "evaluations.record": RecordEvaluation,
    "checkpoints.create": RequestCheckpoint,
}

# Sent by envbranch's own processors (the vector processor reports copy progress).
INTERNAL_COMMANDS = frozenset(
    {"tasks.copy_progress", "tasks.reprocess_progress", "tasks.apply_progress"}
)

# What a resource computes never changes; an update that tries gets a pointer to clone.
IMMUTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "buckets.update": ("bucket_schema",),
    "collections.update": ("source", "feature_extractor"),
    "retrievers.update": ("collection_identifiers", "collection_ids", "stages", "input_schema"),
    "taxonomies.update": ("config",),
}


def immutable_field_message(kind: str, name: str) -> str:
    """What to do instead of changing ``name`` of a resource of ``kind`` (plural)."""
    if f"{kind}.clone" in BODIES:
        return (
            f"{name} cannot change once set: clone the {kind[:-1]} with a new {name} "
            f"instead ({kind}.clone)"
        )
    return (
        f"{name} cannot change once set: create a new {kind[:-1]} with the {name} you "
        f"need ({kind}.create)"
    )


class Command(BaseModel):
    """A decoded, validated command."""

    model_config = ConfigDict(frozen=True)

    command_id: str
    type: str
    body: Body
    actor: str
    issued_at: datetime | None = None

    @property
    def digest(self) -> str:
        """Identifies who asks for what, to tell a retry from a reused command_id: the
        same body from another actor is not a retry (it must not pass for one)."""
        canonical = json.dumps(
            {"type": self.type, "body": self.body.model_dump(mode="json"), "actor": self.actor},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _rejected(code: ErrorCode, error: ValidationError, prefix: str) -> CommandRejected:
    problems = [
        {
            "field": _field_path((prefix, *e["loc"]) if prefix else e["loc"]),
            "message": e["msg"],
        }
        for e in error.errors(include_url=False)
    ]
    first = problems[0]
    return CommandRejected(
        code, f"{first['field']}: {first['message']}", field=first["field"], problems=problems
    )


def decode_command(raw: bytes) -> Command:
    """Read a command from the bytes of a message; CommandRejected says why not, whatever
    the bytes are (see domain.json_limits)."""
    document = json_limits.parse(raw)
    if not isinstance(document, dict):
        raise CommandRejected(
            ErrorCode.INVALID_ENVELOPE,
            f"a command is a JSON object, got {type(document).__name__}",
        )
    return command_from_document(document)


def command_from_document(document: dict[str, Any]) -> Command:
    try:
        envelope = CommandEnvelope.model_validate(document)
    except ValidationError as e:
        raise _rejected(ErrorCode.INVALID_ENVELOPE, e, "") from e
    body_model = BODIES.get(envelope.type)
    if body_model is None:
        raise CommandRejected(
            ErrorCode.UNKNOWN_COMMAND_TYPE,
            f"unknown command type {envelope.type!r}; known types: {', '.join(sorted(BODIES))}",
            field="type",
        )
    for name in IMMUTABLE_FIELDS.get(envelope.type, ()):
        if name in envelope.body:
            raise CommandRejected(
                ErrorCode.IMMUTABLE_FIELD,
                immutable_field_message(envelope.type.split(".")[0], name),
                field=f"body.{name}",
            )
    try:
        body = body_model.model_validate(envelope.body)
    except ValidationError as e:
        raise _rejected(ErrorCode.VALIDATION_ERROR, e, "body") from e
    return Command(
        command_id=envelope.command_id,
        type=envelope.type,
        body=body,
        actor=envelope.actor,
        issued_at=envelope.issued_at,
    )
