"""One error shape for every error, and an OpenAPI document that lists them all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveStack


@pytest.fixture
def http(live_stack: LiveStack) -> Iterator[httpx.Client]:
    auth = {"Authorization": f"Bearer {live_stack.admin_key}"}
    with httpx.Client(base_url=live_stack.url, headers=auth) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error of an answer in the documented shape, and nothing else."""
    body = response.json()
    assert set(body) == {"success", "status", "error"}  # Mixpeek's envelope
    assert body["success"] is False and body["status"] == response.status_code
    assert (
        {"message", "type", "code"} <= set(body["error"]) <= {"message", "type", "code", "details"}
    )
    assert body["error"]["code"] == body["error"]["type"]
    assert isinstance(body["error"].get("details", {}), dict)
    return dict(body["error"])


def test_a_path_no_operation_has_answers_404_not_found(http: httpx.Client) -> None:
    response = http.get("/v1/nothing-here")

    assert response.status_code == 404
    assert error_of(response)["type"] == "not_found"


def test_a_method_a_path_does_not_take_answers_405_with_the_methods_it_does(
    http: httpx.Client,
) -> None:
    on_list = http.put("/v1/namespaces/list")
    on_namespace = http.put("/v1/namespaces/prod")

    assert on_list.status_code == on_namespace.status_code == 405
    assert error_of(on_list)["type"] == error_of(on_namespace)["type"] == "method_not_allowed"
    # /v1/namespaces/list is its own operation, not GET /v1/namespaces/{identifier}
    assert on_list.headers["Allow"] == "POST"
    assert on_namespace.headers["Allow"] == "DELETE, GET, PATCH"


def test_a_body_that_is_not_json_answers_400(http: httpx.Client) -> None:
    response = http.post(
        "/v1/namespaces",
        content=b'{"namespace_name": ',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_json"


@pytest.mark.parametrize("offset", [False, True, "1", 1.5, 2**63])
def test_a_list_offset_is_an_integer_and_nothing_else(http: httpx.Client, offset: Any) -> None:
    response = http.post("/v1/namespaces/list", json={"offset": offset})

    assert response.status_code == 422
    assert error_of(response)["details"]["field"].endswith("offset")


def test_a_list_offset_without_a_fraction_is_an_integer_as_in_json_schema(
    http: httpx.Client,
) -> None:
    response = http.post("/v1/namespaces/list", json={"offset": 2.0, "limit": 1.0})

    assert response.status_code == 200
    pagination = response.json()["pagination"]
    assert (pagination["limit"], pagination["offset"]) == (1, 2)


def test_an_update_of_a_bucket_schema_says_to_create_a_new_bucket(http: httpx.Client) -> None:
    ns = http.post("/v1/namespaces", json={"namespace_name": f"err-{uuid.uuid4().hex[:8]}"})
    headers = {"X-Namespace": ns.json()["namespace_id"]}
    http.post(
        "/v1/buckets",
        json={"bucket_name": "b", "bucket_schema": {"properties": {}}},
        headers=headers,
    ).raise_for_status()

    response = http.patch("/v1/buckets/b", json={"bucket_schema": {}}, headers=headers)

    error = error_of(response)
    assert (response.status_code, error["type"]) == (422, "immutable_field")
    assert "create a new bucket" in error["message"] and "clone" not in error["message"]


def test_every_operation_documents_its_errors_in_the_one_error_shape(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    error = {"$ref": "#/components/schemas/ErrorResponse"}

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            errors = {status for status in answers if int(status) >= 400}
            where = f"{method.upper()} {path}"
            assert "500" in errors, where
            for status in errors:
                assert answers[status]["content"]["application/json"]["schema"] == error, where
            if path.startswith("/v1/health"):
                continue
            assert operation["security"] == [{"HTTPBearer": []}], where
            assert {"401", "422"} <= errors, where
            if method != "get" and not path.endswith(("/list", "/execute", "/classify")):
                assert {"409", "413", "504"} <= errors, where  # a command
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["paths"]["/v1/keys"]["post"]["responses"].keys() >= {"403"}
