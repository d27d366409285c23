"""Vectors packed as commands and events carry them: the codec and the values that use it."""

from __future__ import annotations

import base64
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from contract.objects import DocumentsCreateRequest
from contract.requests import DocumentsWriteRequest
from domain import packed_vectors
from domain.values import Document
from projections.read_model.projector import _documents_audited

float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(st.lists(float32s, min_size=1, max_size=64))
def test_packing_keeps_every_float32_exactly(values):
    packed = packed_vectors.pack(values)
    assert packed_vectors.unpack(packed) == values
    assert packed_vectors.size_of(packed) == len(values)
    assert packed_vectors.digest(packed) == packed_vectors.digest(values)


def test_packed_is_little_endian_float32_in_base64():
    assert (
        packed_vectors.pack([1.0, -2.0]) == base64.b64encode(struct.pack("<2f", 1.0, -2.0)).decode()
    )


def test_a_384_d_vector_packs_to_a_quarter_of_its_json():
    values = [math.pi / (i + 1) for i in range(384)]
    assert len(packed_vectors.pack(values)) == 2048
    assert len(str(values)) > 3 * 2048


@pytest.mark.parametrize(
    ("packed", "says"),
    [
        ("abc", "base64 of little-endian float32"),
        ("!!!!", "base64 of little-endian float32"),
        ("AAAA", "3 bytes is not a whole, non-zero number of 4-byte floats"),
        ("", "0 bytes"),
        (base64.b64encode(struct.pack("<2f", 1.0, math.inf)).decode(), "component 1 is not finite"),
        (base64.b64encode(struct.pack("<f", math.nan)).decode(), "component 0 is not finite"),
        (base64.b64encode(bytes(4 * 8193)).decode(), "at most 8192 components, not 8193"),
    ],
)
def test_a_bad_packed_vector_is_refused_saying_why(packed, says):
    with pytest.raises(ValueError, match=says):
        packed_vectors.unpack(packed)
    with pytest.raises(ValidationError, match=says) as caught:
        Document(vector=packed)
    assert caught.value.errors()[0]["loc"] == ("vector", "packed")


def test_a_bad_list_vector_is_refused_as_a_list():
    with pytest.raises(ValidationError) as caught:
        Document(vector=[1.0, "x"])
    assert caught.value.errors()[0]["loc"] == ("vector", "values", 1)


def test_both_forms_travel_packed_and_alike():
    values = [0.1, 0.2, 0.3]
    as_list = Document(document_id="a", vector=values).model_dump(mode="json")
    as_packed = Document(document_id="a", vector=packed_vectors.pack(values)).model_dump(
        mode="json"
    )
    assert as_list == as_packed
    assert as_list["vector"] == packed_vectors.pack(values)


def test_documents_in_one_write_share_a_size_across_forms():
    one = {"vector": [1.0, 2.0]}
    other = {"vector": packed_vectors.pack([1.0, 2.0, 3.0])}
    with pytest.raises(ValidationError, match=r"differ in size: \[2, 3\]"):
        DocumentsWriteRequest.model_validate({"documents": [one, other]})
    same = {"vector": packed_vectors.pack([3.0, 4.0])}
    assert len(DocumentsWriteRequest.model_validate({"documents": [one, same]}).documents) == 2


def test_mixpeeks_one_document_may_bring_its_vector_packed():
    body = DocumentsCreateRequest.model_validate(
        {"vectors": {"embedding": packed_vectors.pack([0.5, 0.25])}, "metadata": {"k": 1}}
    )
    (document,) = body.as_documents()
    assert packed_vectors.unpack(document.model_dump(mode="json")["vector"]) == [0.5, 0.25]


def test_the_audit_keeps_a_written_vectors_size_and_digest_not_the_vector():
    packed = packed_vectors.pack([0.5, 0.25])
    data = {
        "documents": [
            {"document_id": "a", "vector": packed, "payload": {"k": 1}},
            {"document_id": "b", "vector": [0.5, 0.25]},  # an event from before packing
            {"document_id": "c", "text": "embedded by the collection's extractor"},
            {"document_id": "d", "vector": "not a vector"},
            "not a document",
        ]
    }
    audited = _documents_audited(data)["documents"]
    assert audited[0] == {
        "document_id": "a",
        "payload": {"k": 1},
        "vector_size": 2,
        "vector_digest": packed_vectors.digest(packed),
    }
    assert audited[1]["vector_digest"] == audited[0]["vector_digest"]
    assert audited[2] == data["documents"][2]
    assert audited[3] == {"document_id": "d", "vector_size": None}
    assert audited[4] == "not a document"
