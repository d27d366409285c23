"""Commands: one JSON envelope ``{command_id, type, body, actor, issued_at}``.

Bodies follow the public Mixpeek API's field names. A command that acts on an
existing resource names it the way the API paths do (``*_identifier``: an ID,
or a name resolved within the namespace); a command that creates inside a
namespace carries ``namespace_identifier``. Each body class names its command
type (``TYPE``); the registry of types is derived from them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from contract.requests import (
    ApplyTaxonomyRequest,
    Body,
    BucketCreateRequest,
    BucketObjectsAddRequest,
    BucketUpdateRequest,
    CheckpointRequest,
    CollectionCloneRequest,
    CollectionCreateRequest,
    CollectionUpdateRequest,
    DocumentsDeleteRequest,
    DocumentsWriteRequest,
    EvaluationRun,
    EvaluationSetCreateRequest,
    Finite,
    Gate,
    NamespaceCloneRequest,
    NamespaceCreateRequest,
    NamespaceUpdateRequest,
    Reason,
    RefCreateRequest,
    RefMoveRequest,
    RefName,
    RefRollbackRequest,
    RetrieverCloneRequest,
    RetrieverCreateRequest,
    RetrieverUpdateRequest,
    TaxonomyCloneRequest,
    TaxonomyCreateRequest,
    TaxonomyUpdateRequest,
)
from domain import json_limits
from domain.errors import CommandRejected, ErrorCode
from domain.mixpeek_options import ADDED
from domain.values import Count, Identifier, JsonInteger


class CommandEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command_id: Annotated[str, Field(min_length=1, max_length=256)]
    type: Annotated[str, Field(min_length=1, max_length=100)]
    body: dict[str, Any]
    actor: Annotated[str, Field(min_length=1, max_length=200)]
    issued_at: datetime | None = None


class InNamespace(Body):
    namespace_identifier: Identifier


class CreateNamespace(NamespaceCreateRequest):
    TYPE: ClassVar[str] = "namespaces.create"


class UpdateNamespace(InNamespace, NamespaceUpdateRequest):
    TYPE: ClassVar[str] = "namespaces.update"


class CloneNamespace(InNamespace, NamespaceCloneRequest):
    TYPE: ClassVar[str] = "namespaces.clone"


class CreateBucket(InNamespace, BucketCreateRequest):
    TYPE: ClassVar[str] = "buckets.create"


class UpdateBucket(InNamespace, BucketUpdateRequest):
    TYPE: ClassVar[str] = "buckets.update"
    bucket_identifier: Identifier


class AddObjects(InNamespace, BucketObjectsAddRequest):
    TYPE: ClassVar[str] = "buckets.objects.add"
    bucket_identifier: Identifier


class CreateCollection(InNamespace, CollectionCreateRequest):
    TYPE: ClassVar[str] = "collections.create"


class WriteDocuments(InNamespace, DocumentsWriteRequest):
    TYPE: ClassVar[str] = "collections.documents.write"
    collection_identifier: Identifier


class DeleteDocuments(InNamespace, DocumentsDeleteRequest):
    TYPE: ClassVar[str] = "collections.documents.delete"
    collection_identifier: Identifier


class UpdateCollection(InNamespace, CollectionUpdateRequest):
    TYPE: ClassVar[str] = "collections.update"
    collection_identifier: Identifier


class CloneCollection(InNamespace, CollectionCloneRequest):
    TYPE: ClassVar[str] = "collections.clone"
    collection_identifier: Identifier


class CreateRetriever(InNamespace, RetrieverCreateRequest):
    TYPE: ClassVar[str] = "retrievers.create"


class UpdateRetriever(InNamespace, RetrieverUpdateRequest):
    TYPE: ClassVar[str] = "retrievers.update"
    retriever_identifier: Identifier


class CloneRetriever(InNamespace, RetrieverCloneRequest):
    TYPE: ClassVar[str] = "retrievers.clone"
    retriever_identifier: Identifier


class CreateTaxonomy(InNamespace, TaxonomyCreateRequest):
    TYPE: ClassVar[str] = "taxonomies.create"


class UpdateTaxonomy(InNamespace, TaxonomyUpdateRequest):
    TYPE: ClassVar[str] = "taxonomies.update"
    taxonomy_identifier: Identifier


class CloneTaxonomy(InNamespace, TaxonomyCloneRequest):
    TYPE: ClassVar[str] = "taxonomies.clone"
    taxonomy_identifier: Identifier


class TriggerReprocess(InNamespace):
    TYPE: ClassVar[str] = "collections.trigger"
    collection_identifier: Identifier


class ApplyTaxonomy(InNamespace, ApplyTaxonomyRequest):
    TYPE: ClassVar[str] = "collections.apply_taxonomy"
    collection_identifier: Identifier


class ReportReprocessProgress(Body):
    TYPE: ClassVar[str] = "tasks.reprocess_progress"
    task_id: Identifier
    done: Count
    total: Count
    finished: bool


class ReportApplyProgress(ReportReprocessProgress):
    TYPE: ClassVar[str] = "tasks.apply_progress"


class ReportCopyProgress(Body):
    TYPE: ClassVar[str] = "tasks.copy_progress"
    task_id: Identifier
    collection_id: Identifier
    copied: Count
    total: Count
    done: bool


class CreateRef(InNamespace, RefCreateRequest):
    TYPE: ClassVar[str] = "refs.create"


class MoveRef(InNamespace, RefMoveRequest):
    TYPE: ClassVar[str] = "refs.move"
    ref_name: RefName


class RollbackRef(InNamespace, RefRollbackRequest):
    TYPE: ClassVar[str] = "refs.rollback"
    ref_name: RefName


class PromoteRef(InNamespace):
    """Move the ref to ``candidate`` if the gate holds on the recorded evaluation, whose
    runs are the candidate and (for relative thresholds) the ref's current target."""

    TYPE: ClassVar[str] = "refs.promote"

    ref_name: RefName
    candidate: Identifier
    evaluation_id: Identifier
    gate: Gate
    reason: Reason = ""


class CreateEvaluationSet(InNamespace, EvaluationSetCreateRequest):
    TYPE: ClassVar[str] = "evaluation_sets.create"


class RecordEvaluation(InNamespace):
    """What an evaluation measured (run by the API, recorded as an event). A publisher
    may choose ``evaluation_id`` (``eval_`` + 32 hex digits) to refer to it at once."""

    TYPE: ClassVar[str] = "evaluations.record"

    evaluation_id: Identifier | None = None
    evaluation_set_identifier: Identifier
    k: Annotated[int, Strict(), Field(ge=1, le=1000), JsonInteger]
    runs: Annotated[list[EvaluationRun], Field(min_length=1, max_length=2)]
    agreement: Finite | None = None


class RequestCheckpoint(CheckpointRequest):
    TYPE: ClassVar[str] = "checkpoints.create"


# Deletes: the resource (or namespace) named by ID or name leaves its namespace; its
# history stays (a clone as of a position before the delete brings it back), its name is
# free again, and what was cloned from it or points at it is not changed (see
# domain.base.Resource and domain.namespace).


class DeleteNamespace(InNamespace):
    TYPE: ClassVar[str] = "namespaces.delete"


class DeleteBucket(InNamespace):
    TYPE: ClassVar[str] = "buckets.delete"
    bucket_identifier: Identifier


class DeleteCollection(InNamespace):
    TYPE: ClassVar[str] = "collections.delete"
    collection_identifier: Identifier


class DeleteRetriever(InNamespace):
    TYPE: ClassVar[str] = "retrievers.delete"
    retriever_identifier: Identifier


class DeleteTaxonomy(InNamespace):
    TYPE: ClassVar[str] = "taxonomies.delete"
    taxonomy_identifier: Identifier


def _command_bodies(base: type[Body]) -> dict[str, type[Body]]:
    found: dict[str, type[Body]] = {}
    for cls in base.__subclasses__():
        if "TYPE" in vars(cls):
            found[vars(cls)["TYPE"]] = cls
        found.update(_command_bodies(cls))
    return found


# Every command type and its body, from the classes above (each names its TYPE).
BODIES: dict[str, type[Body]] = _command_bodies(Body)


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
        body = _without_added_nones(self.body, self.body.model_dump(mode="json"))
        canonical = json.dumps(
            {"type": self.type, "body": body, "actor": self.actor},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def _without_added_nones(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    """``dumped`` (``model`` as JSON) without the fields added since commands were first
    stored (marked ADDED) that are None, at any depth: a digest then matches the one the
    same command had before they existed."""
    for name, field in type(model).model_fields.items():
        if name not in dumped:
            continue
        value = getattr(model, name)
        if value is None and ADDED in field.metadata:
            del dumped[name]
        elif isinstance(value, BaseModel) and isinstance(dumped[name], dict):
            _without_added_nones(value, dumped[name])
        elif isinstance(value, list | tuple) and isinstance(dumped[name], list):
            for item, item_dumped in zip(value, dumped[name], strict=False):
                if isinstance(item, BaseModel) and isinstance(item_dumped, dict):
                    _without_added_nones(item, item_dumped)
    return dumped


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
