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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domain.errors import CommandRejected, ErrorCode
from domain.values import (
    BucketObject,
    BucketSchema,
    CollectionSource,
    Description,
    Document,
    FeatureExtractor,
    Identifier,
    IncludeResources,
    ResourceName,
    Stage,
    TaxonomyConfig,
)


class CommandEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command_id: Annotated[str, Field(min_length=1, max_length=200)]
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
    done: Annotated[int, Field(ge=0)]
    total: Annotated[int, Field(ge=0)]
    finished: bool


class ReportCopyProgress(Body):
    task_id: Identifier
    collection_id: Identifier
    copied: Annotated[int, Field(ge=0)]
    total: Annotated[int, Field(ge=0)]
    done: bool


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
    """Read a command from the bytes of a message; CommandRejected says why not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CommandRejected(ErrorCode.NOT_UTF8, f"message is not UTF-8: {e}") from e
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise CommandRejected(ErrorCode.INVALID_JSON, f"message is not JSON: {e}") from e
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
            kind = envelope.type.split(".")[0]
            raise CommandRejected(
                ErrorCode.IMMUTABLE_FIELD,
                f"{name} cannot change once set: clone the {kind[:-1]} with a new "
                f"{name} instead ({kind}.clone)",
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
