"""Value objects of the resources, shaped like the public Mixpeek API.

They validate what a command carries; aggregates store them as plain JSON
(``model_dump``), which is also what the events topic shows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    field_serializer,
    model_validator,
)

from domain import packed_vectors
from domain.ids import ID_PATTERN
from domain.json_limits import MAX_INT
from domain.mixpeek_options import (
    ADDED,
    DefaultOverlap,
    NoFieldMap,
    NoSample,
    OneLabel,
    SlashSeparator,
    Unsupported,
)
from domain.packed_vectors import MAX_DIMENSIONS

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_name(value: str) -> str:
    if not NAME_PATTERN.fullmatch(value):  # fullmatch: "$" alone lets a final newline in
        raise ValueError(
            "must be 1-128 characters of letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    if ID_PATTERN.match(value):
        raise ValueError("must not have the form of a resource ID")
    return value


# check_name in JSON Schema, so that clients and fuzzers know the rule: a name, not an ID.
NAME_JSON_PATTERN = f"^(?!{ID_PATTERN.pattern[1:]}){NAME_PATTERN.pattern[1:]}"
ResourceName = Annotated[
    str,
    AfterValidator(check_name),
    Field(min_length=1, max_length=128, json_schema_extra={"pattern": NAME_JSON_PATTERN}),
]
Description = Annotated[str, Field(max_length=2000)]


def _none_is_empty(value: str | None) -> str:
    return "" if value is None else value


# A description on a create: null (Mixpeek's "none") is the empty description.
CreateDescription = Annotated[Description | None, AfterValidator(_none_is_empty)]


def _none_is_no_params(value: dict[str, Any] | None) -> dict[str, Any]:
    return {} if value is None else value


def _none_is_no_mappings(value: list[Any] | None) -> list[Any]:
    return [] if value is None else value


def _none_is_replace(value: str | None) -> str:
    return "replace" if value is None else value


Identifier = Annotated[str, Field(min_length=1, max_length=200)]


def _json_integer(value: Any) -> Any:
    return int(value) if type(value) is float and value.is_integer() else value


# Integers are strict (a JSON true is not 1, nor is "1"), but 2.0 is 2: JSON Schema's
# "integer" is any number without a fraction. Put it last: Annotated[int, Strict(),
# Field(...), JsonInteger].
JsonInteger = BeforeValidator(_json_integer)
# Positions and counts fit 64 bits, the SQL BIGINT they go into. "format: int64" says so
# exactly: an OpenAPI document gives "maximum" as a float, which rounds 2**63 - 1 up.
INT64 = {"format": "int64"}
# a position in the event log
Position = Annotated[int, Strict(), Field(ge=1, le=MAX_INT, json_schema_extra=INT64), JsonInteger]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_INT, json_schema_extra=INT64), JsonInteger]
# A vector component: finite and within float32, which is how vector stores keep it.
# Strict: an integer is a number, a JSON true or "1.5" is not.
FLOAT32_MAX = 3.4028234663852886e38
Component = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]


class Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldPassthrough(Value):
    source_path: Annotated[str, Field(min_length=1)]
    target_path: str | None = None
    default: Any = None
    required: bool = False


class FeatureExtractor(Value):
    """Which model turns source objects into vectors, and from which fields.
    Two collections can share vectors only when these are equal."""

    feature_extractor_name: Annotated[str, Field(min_length=1, max_length=200)]
    version: Annotated[str, Field(min_length=1, max_length=50)] = "v1"
    # null, as Mixpeek's model allows, is no parameters
    params: Annotated[dict[str, Any] | None, AfterValidator(_none_is_no_params)] = Field(
        default_factory=dict
    )
    input_mappings: dict[str, str] | None = None
    field_passthrough: list[FieldPassthrough] | None = None
    include_all_source_fields: bool = False
    parameters: Unsupported = None  # Mixpeek's alias of params


class BucketSchema(Value):
    properties: dict[str, dict[str, Any]]


class CollectionSource(Value):
    type: Literal["bucket", "collection"]
    bucket_ids: list[Identifier] = Field(default_factory=list)
    collection_id: Identifier | None = None
    # Mixpeek's; field_map {} is what its SDK sends for none
    field_map: NoFieldMap = None
    source_namespace_id: Unsupported = None
    collection_ids: Unsupported = None
    inherited_bucket_ids: Unsupported = None
    source_filters: Unsupported = None

    @model_validator(mode="after")
    def _consistent(self) -> CollectionSource:
        if self.type == "bucket":
            if not self.bucket_ids:
                raise ValueError("a bucket source needs at least one entry in bucket_ids")
            if self.collection_id is not None:
                raise ValueError("a bucket source takes bucket_ids, not collection_id")
        else:
            if self.collection_id is None:
                raise ValueError("a collection source needs collection_id")
            if self.bucket_ids:
                raise ValueError("a collection source takes collection_id, not bucket_ids")
        return self


StageType = Literal["filter", "sort", "reduce", "apply", "enrich"]

# The stage_type a stage_id belongs to, so it may be left out, as in the Mixpeek API.
STAGE_TYPES: dict[str, StageType] = {
    **dict.fromkeys(
        ["feature_search", "attribute_filter", "llm_filter", "agent_search", "query_expand"],
        "filter",
    ),
    **dict.fromkeys(
        ["sort_relevance", "sort_attribute", "mmr", "rerank", "score_normalize"], "sort"
    ),
    **dict.fromkeys(
        ["aggregate", "group_by", "cluster", "sample", "summarize", "limit", "deduplicate"],
        "reduce",
    ),
    **dict.fromkeys(["json_transform", "rag_prepare", "api_call", "code_execution"], "apply"),
    **dict.fromkeys(["llm_enrich", "taxonomy_enrich", "document_enrich"], "enrich"),
}


class StageConfig(Value):
    stage_id: Annotated[str, Field(min_length=1, max_length=100)]
    parameters: dict[str, Any] = Field(default_factory=dict)
    pre_filters: dict[str, Any] | None = None
    post_filters: dict[str, Any] | None = None


class Stage(Value):
    stage_name: Annotated[str, Field(min_length=1, max_length=200)]
    stage_type: StageType | None = None
    config: StageConfig
    description: str | None = None
    batch_size: Unsupported = None  # Mixpeek's
    on_error: Unsupported = None
    output_alias: Unsupported = None
    # Mixpeek answers a stage with config.parameters mirrored here; sent back, it must agree
    parameters: Annotated[dict[str, Any] | None, ADDED] = None

    @model_validator(mode="after")
    def _infer_stage_type(self) -> Stage:
        if self.parameters is not None:
            if self.parameters not in ({}, self.config.parameters):
                raise ValueError("parameters mirrors config.parameters: send one of the two")
            object.__setattr__(self, "parameters", None)
        if self.stage_type is None:
            inferred = STAGE_TYPES.get(self.config.stage_id)
            if inferred is None:
                raise ValueError(
                    f"stage_type is required for stage_id {self.config.stage_id!r}, "
                    "which has no known type"
                )
            object.__setattr__(self, "stage_type", inferred)
        return self


class InputMapping(Value):
    input_key: Annotated[str, Field(min_length=1)]
    source_type: Literal["payload", "literal", "vector"]
    path: str | None = None
    override: Any = None


class EnrichmentField(Value):
    field_path: Annotated[str, Field(min_length=1)]
    target_field: str | None = None
    merge_mode: Annotated[Literal["replace", "append"] | None, AfterValidator(_none_is_replace)] = (
        "replace"  # null, as Mixpeek's model allows, is replace
    )


class SourceCollection(Value):
    collection_id: Identifier
    enrichment_fields: list[EnrichmentField] = Field(default_factory=list)


class FlatTaxonomyConfig(Value):
    taxonomy_type: Literal["flat"]
    retriever_id: Identifier
    input_mappings: list[InputMapping] = Field(default_factory=list)
    source_collection: SourceCollection
    top_k: OneLabel = None  # Mixpeek's: labels per document; envbranch assigns the best one
    step_analytics: Unsupported = None


class HierarchicalNode(Value):
    collection_id: Identifier
    parent_collection_id: Identifier | None = None
    label: str | None = None
    summary: str | None = None
    keywords: list[str] | None = None
    retriever_id: Identifier | None = None
    input_mappings: list[InputMapping] | None = None
    enrichment_fields: list[EnrichmentField] = Field(default_factory=list)


class HierarchicalTaxonomyConfig(Value):
    taxonomy_type: Literal["hierarchical"]
    retriever_id: Identifier | None = None
    input_mappings: Annotated[list[InputMapping] | None, AfterValidator(_none_is_no_mappings)] = (
        Field(default_factory=list)
    )  # null, as Mixpeek's model allows, is none
    hierarchical_nodes: Annotated[list[HierarchicalNode], Field(min_length=1)]
    # Mixpeek's inference and path options; its SDK sends the three defaults
    inference_strategy: Unsupported = None
    inference_collections: Unsupported = None
    llm_provider: Unsupported = None
    llm_model: Unsupported = None
    llm_prompt_template: Unsupported = None
    llm_sample_size: NoSample = None
    cluster_ids: Unsupported = None
    cluster_overlap_threshold: DefaultOverlap = None
    step_analytics: Unsupported = None
    path_field: Unsupported = None
    path_separator: SlashSeparator = None

    @model_validator(mode="after")
    def _has_retrievers_and_a_root(self) -> HierarchicalTaxonomyConfig:
        # Whether the nodes form a tree depends on which collections the identifiers
        # name, so that is checked after they are resolved (tree_problem).
        nodes_without = [n for n in self.hierarchical_nodes if n.retriever_id is None]
        if self.retriever_id is None and nodes_without:
            raise ValueError("every node needs a retriever_id when the taxonomy has none")
        roots = [n for n in self.hierarchical_nodes if n.parent_collection_id is None]
        if not roots:
            raise ValueError("hierarchical_nodes need a root (a node without parent_collection_id)")
        return self


def tree_problem(nodes: list[dict[str, Any]]) -> str | None:
    """What keeps resolved hierarchical nodes from being a tree, if anything."""
    ids = [node["collection_id"] for node in nodes]
    if len(set(ids)) != len(ids):
        return "hierarchical_nodes name a collection_id more than once"
    for node in nodes:
        parent = node.get("parent_collection_id")
        if parent is not None and parent not in ids:
            return f"parent_collection_id {parent!r} is not a node"
    return None


TaxonomyConfig = Annotated[
    FlatTaxonomyConfig | HierarchicalTaxonomyConfig, Field(discriminator="taxonomy_type")
]


class BucketObject(Value):
    """A raw object: its text and metadata; a key makes adding it again replace it."""

    key: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_content(self) -> BucketObject:
        if self.text is None and not self.metadata:
            raise ValueError("an object needs text or metadata")
        return self


def _checked_packed(value: str) -> str:
    packed_vectors.raw(value)  # raises ValueError saying what is wrong
    return value


# A vector as a JSON list of numbers, or packed (base64 of little-endian float32).
PackedVector = Annotated[
    str,
    Strict(),
    AfterValidator(_checked_packed),
    Field(
        max_length=4 * ((4 * packed_vectors.MAX_DIMENSIONS + 2) // 3),
        description="base64 of the vector's components as little-endian float32",
    ),
]
VectorValues = Annotated[list[Component], Field(min_length=1, max_length=MAX_DIMENSIONS)]
# One form or the other by the JSON type, so an error speaks of the form that was sent.
Vector = Annotated[
    Annotated[VectorValues, Tag("values")] | Annotated[PackedVector, Tag("packed")],
    Discriminator(lambda v: "packed" if isinstance(v, str) else "values"),
]


class Document(Value):
    """A document written straight into a collection, with its own vector or text to embed.
    Its vector comes as a list of numbers or packed; commands and events carry it packed."""

    document_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    text: str | None = None
    vector: Vector | None = None
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_serializer("vector", when_used="json")
    def _packed(self, vector: list[float] | str | None) -> str | None:
        if vector is None or isinstance(vector, str):
            return vector
        return packed_vectors.pack(vector)

    @model_validator(mode="after")
    def _has_text_or_vector(self) -> Document:
        if self.text is None and self.vector is None:
            raise ValueError("a document needs a vector or text to embed")
        return self


class IncludeResources(Value):
    """What a namespace clone takes along. Bucket metadata always comes along."""

    collections: bool = True
    retrievers: bool = True
    taxonomies: bool = False


def json_of(value: BaseModel | Sequence[BaseModel] | None) -> Any:
    """The plain JSON an aggregate stores for a value object."""
    if value is None:
        return None
    if not isinstance(value, BaseModel):
        return [item.model_dump(mode="json", exclude_none=True) for item in value]
    return value.model_dump(mode="json", exclude_none=True)
