"""Ingestion bodies in envbranch's form and Mixpeek's: POST /v1/buckets/{id}/objects (a
list of objects, or Mixpeek's one object of blobs) and POST /v1/collections/{id}/documents
(a list of documents, or Mixpeek's one document with its vector)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from contract.requests import Body
from domain.mixpeek_options import FalseByDefault, TrueByDefault, Unsupported
from domain.values import BucketObject, Document, Vector

# Mixpeek's blob types: the text one is the object's text; plain values go into its
# metadata under their property; files (image, audio, video, pdf, excel) envbranch does not
# take (it has no object storage).
TEXT_BLOB = "text"
BlobType = Literal[
    "text", "string", "number", "integer", "float", "boolean", "object", "array", "date", "datetime"
]


class Blob(Body):
    property: Annotated[str, Field(min_length=1, max_length=100)]
    type: BlobType
    data: Any = None
    upload_id: Unsupported = None
    checksum: Unsupported = None
    metadata: Unsupported = None
    canonicalize_source: TrueByDefault = None
    force_remirror: FalseByDefault = None
    key_prefix: Unsupported = None


class ObjectsWriteRequest(Body):
    """POST /v1/buckets/{id}/objects: envbranch's list of objects, or Mixpeek's one object
    of blobs (exactly one text blob; other blobs are plain values for the metadata)."""

    objects: Annotated[list[BucketObject], Field(min_length=1, max_length=1000)] | None = None
    blobs: Annotated[list[Blob], Field(min_length=1, max_length=100)] | None = None
    metadata: dict[str, Any] | None = None
    key_prefix: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    idempotency_key: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    skip_duplicates: FalseByDefault = None  # Mixpeek's; its SDK always sends the three
    canonicalize_source: TrueByDefault = None
    force_remirror: FalseByDefault = None
    edges: Unsupported = None

    @model_validator(mode="after")
    def _one_form(self) -> ObjectsWriteRequest:
        mixpeek = [self.blobs, self.metadata, self.key_prefix, self.idempotency_key]
        if self.objects is not None and any(v is not None for v in mixpeek):
            raise ValueError("send objects (envbranch's form) or blobs (Mixpeek's), not both")
        if self.objects is None:
            if self.blobs is None:
                raise ValueError("send objects, or Mixpeek's blobs")
            texts = [b for b in self.blobs if b.type == TEXT_BLOB]
            if len(texts) != 1 or not isinstance(texts[0].data, str):
                raise ValueError("blobs need exactly one blob of type text, with a string as data")
        return self

    def as_objects(self) -> list[BucketObject]:
        if self.objects is not None:
            return self.objects
        assert self.blobs is not None  # checked by _one_form
        values = {b.property: b.data for b in self.blobs if b.type != TEXT_BLOB}
        (text,) = [b.data for b in self.blobs if b.type == TEXT_BLOB]
        # key_prefix is a storage path in Mixpeek (envbranch stores no files): not a key
        key = self.idempotency_key
        return [BucketObject(key=key, text=text, metadata={**(self.metadata or {}), **values})]


class DocumentsCreateRequest(Body):
    """envbranch's list of documents, or Mixpeek's one document: its ``metadata`` (the
    payload) and one pre-computed vector in ``vectors`` (a collection here has one vector
    index; the key names it). Mixpeek's lineage fields are not kept."""

    documents: Annotated[list[Document], Field(min_length=1, max_length=1000)] | None = None
    metadata: dict[str, Any] | None = None
    vectors: dict[str, Vector] | None = None
    collection_id: Unsupported = None  # the path names the collection
    root_object_id: Unsupported = None
    root_bucket_id: Unsupported = None
    source_type: Unsupported = None
    source_collection_id: Unsupported = None
    source_document_id: Unsupported = None
    source_object_id: Unsupported = None
    lineage_path: Unsupported = None
    lineage_chain: Unsupported = None
    content_hash: Unsupported = None
    document_schema_version: Unsupported = None
    features: Unsupported = None

    @model_validator(mode="after")
    def _one_form(self) -> DocumentsCreateRequest:
        if self.documents is not None:
            if self.metadata is not None or self.vectors is not None:
                raise ValueError("send documents (envbranch's form) or one document, not both")
        elif self.vectors is None or len(self.vectors) != 1:
            raise ValueError("one document needs exactly one vector in vectors (or send documents)")
        return self

    def as_documents(self) -> list[Document]:
        if self.documents is not None:
            return self.documents
        assert self.vectors is not None  # checked by _one_form
        (vector,) = self.vectors.values()
        return [Document(vector=vector, payload=self.metadata or {})]
